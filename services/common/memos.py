"""Memos on the ledger's side: taking a memo's disclosure off a POST body and checking it against the signed
digest (the ledger's checks, each refusal a 422 of its own problem type).

The commitment itself (``memo_digest`` signed, ``memo_disclosure`` beside it) is the SDK's
(`smartcity_sdk.memos`), imported here under the names services have always used, so one implementation makes
and opens every memo. A client builds a body so::

    memo = commit_memo("lunch")
    body = {**sender.sign({"from": ..., "to": ..., ..., "memo_digest": memo.digest}),
            "memo_disclosure": memo.disclosure}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smartcity_sdk.memos import (
    DIGEST_FIELD,
    DISCLOSURE_FIELD,
    MALFORMED,
    MISMATCH,
    MemoError,
    commit_memo,
    memo_text,
    open_memo,
)

__all__ = [
    "DIGEST_FIELD",
    "DIGEST_MISSING",
    "DISCLOSURE_FIELD",
    "DISCLOSURE_MISSING",
    "MALFORMED",
    "MISMATCH",
    "PLAINTEXT",
    "PLAINTEXT_FIELD",
    "MemoError",
    "checked_memo",
    "commit_memo",
    "memo_text",
    "open_memo",
    "take_disclosure",
]

PLAINTEXT_FIELD = "memo"
"""Where a memo was once written in the clear: refused now."""

# Why a memo was refused, besides the SDK's reasons (MISMATCH, MALFORMED): each is the problem type the ledger
# answers (422).
PLAINTEXT = "plaintext-memo"
DISCLOSURE_MISSING = "memo-disclosure-missing"
DIGEST_MISSING = "memo-digest-missing"


def take_disclosure(body: Any) -> tuple[Any, Any]:
    """A POST body as (the signed object without ``memo_disclosure``, the disclosure or None); a body that
    is not a JSON object is given back as it is, for its schema to refuse. Raises `MemoError` (`PLAINTEXT`)
    if the object carries a memo in the clear."""
    if not isinstance(body, Mapping):
        return body, None
    if PLAINTEXT_FIELD in body:
        raise MemoError(
            PLAINTEXT,
            f"a memo never goes on the public chain in the clear: sign {DIGEST_FIELD} and send "
            f"{DISCLOSURE_FIELD} beside the signed object (services/common/memos.py)",
        )
    signed = {k: v for k, v in body.items() if k != DISCLOSURE_FIELD}
    return signed, body.get(DISCLOSURE_FIELD)


def checked_memo(signed: Mapping[str, Any], disclosure: Any) -> str | None:
    """The memo text of a signed object and the disclosure sent beside it (None: no memo at all); raises
    `MemoError` unless both or neither are given and the disclosure opens the signed digest."""
    memo_digest = signed.get(DIGEST_FIELD)
    if memo_digest is None and disclosure is None:
        return None
    if disclosure is None:
        raise MemoError(DISCLOSURE_MISSING, f"{DIGEST_FIELD} is signed but no {DISCLOSURE_FIELD} opens it")
    if memo_digest is None:
        raise MemoError(
            DIGEST_MISSING, f"{DISCLOSURE_FIELD} is given but no signed {DIGEST_FIELD} commits to it"
        )
    return open_memo(disclosure, memo_digest)
