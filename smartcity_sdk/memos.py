"""Memos of transfers and issuer commands as salted hash commitments, the way SD-JWT (RFC 9901) discloses a claim.

Pure (no I/O). A memo is personal, and the signed object it belongs to goes verbatim into a public chain leaf,
so the signed object carries only ``memo_digest``; the text travels beside it, unsigned, as ``memo_disclosure``:

- the disclosure is RFC 9901's disclosure of an object property named ``memo``: base64url (unpadded) of the
  UTF-8 JSON array ``[salt, "memo", text]``, with a fresh random salt of 128 bits (`commit_memo`);
- ``memo_digest`` is its RFC 9901 digest: base64url (unpadded) SHA-256 of the disclosure's ASCII text.

The signature covers the digest; the digest opens only with its disclosure, which the ledger keeps off the chain
for the parties and auditors (and erases with a person's data). `open_memo` checks a disclosure against a digest
and gives the text, or raises `MemoError` naming what is wrong (its ``kind`` is the API's problem type).

A client builds a body so (`sign_with_memo`)::

    memo = commit_memo("lunch")
    body = {**sender.sign({"from": ..., "to": ..., ..., "memo_digest": memo.digest}),
            "memo_disclosure": memo.disclosure}
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from smartcity_sdk.disclosures import digest, make_disclosure
from smartcity_sdk.signing import Keypair, b64url_decode

CLAIM = "memo"
"""The claim name inside a memo's disclosure."""
DIGEST_FIELD = "memo_digest"
"""The signed member committing to the memo."""
DISCLOSURE_FIELD = "memo_disclosure"
"""The unsigned body member beside the signed object that opens `DIGEST_FIELD`."""
MAX_MEMO_CHARS = 280
MIN_SALT_CHARS = 22
"""base64url characters of a salt: at least 22, i.e. 128 bits (RFC 9901 section 9.3)."""
MAX_SALT_CHARS = 86
MAX_DISCLOSURE_CHARS = 2048
"""Enough for the longest memo (280 four-byte characters) with the longest salt."""

# Why a memo was refused: each is the problem type the ledger answers (422).
MISMATCH = "memo-disclosure-mismatch"
MALFORMED = "memo-disclosure-malformed"

_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_SALT = re.compile(rf"^[A-Za-z0-9_-]{{{MIN_SALT_CHARS},{MAX_SALT_CHARS}}}$")


class MemoError(ValueError):
    """A memo that is not a digest opened by its disclosure; `kind` is one of the reasons the ledger answers."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.detail = kind, detail


class MemoCommitment(NamedTuple):
    """A memo's disclosure (the unsigned ``memo_disclosure``) and its digest (the signed ``memo_digest``)."""

    disclosure: str
    digest: str


def commit_memo(text: str, *, salt: str | None = None) -> MemoCommitment:
    """The disclosure of `text` with a fresh 128-bit salt (or `salt`, for test vectors) and its digest.

    Raises `MemoError` (`MALFORMED`) if the text is longer than `MAX_MEMO_CHARS` or the salt too short."""
    if not isinstance(text, str) or len(text) > MAX_MEMO_CHARS:
        raise MemoError(MALFORMED, f"a memo is a string of at most {MAX_MEMO_CHARS} characters")
    if salt is not None and not _SALT.match(salt):
        raise MemoError(
            MALFORMED, f"a memo's salt is {MIN_SALT_CHARS} to {MAX_SALT_CHARS} base64url characters"
        )
    disclosure = make_disclosure(CLAIM, text, salt)
    return MemoCommitment(disclosure, digest(disclosure))


def sign_with_memo(key: Keypair, obj: Mapping[str, Any], memo: MemoCommitment | None) -> dict[str, Any]:
    """The POST body of `obj` (a transfer, an issuer command) signed by `key` with `memo`'s digest, and the
    memo's disclosure beside it, unsigned; without a memo, `obj` signed. Keep `memo` to sign the same memo again
    (with another nonce, say): a fresh commitment would be another salt, another digest."""
    if memo is None:
        return key.sign(obj)
    return {**key.sign({**obj, DIGEST_FIELD: memo.digest}), DISCLOSURE_FIELD: memo.disclosure}


def memo_text(disclosure: Any) -> str:
    """The text of a memo's disclosure, checking its shape only (not which digest it opens); raises
    `MemoError` (`MALFORMED`)."""
    if not _well_formed_text(disclosure):
        raise MemoError(MALFORMED, f"{DISCLOSURE_FIELD} is not base64url text")
    try:
        decoded = json.loads(b64url_decode(disclosure).decode("utf-8"))
    except ValueError as exc:
        raise MemoError(MALFORMED, f"{DISCLOSURE_FIELD} is not base64url of UTF-8 JSON") from exc
    if not (isinstance(decoded, list) and len(decoded) == 3 and decoded[1] == CLAIM):
        raise MemoError(MALFORMED, f'{DISCLOSURE_FIELD} is not the array [salt, "{CLAIM}", text]')
    salt, _, text = decoded
    if not isinstance(salt, str) or not _SALT.match(salt):
        raise MemoError(
            MALFORMED,
            f"the salt of {DISCLOSURE_FIELD} is not {MIN_SALT_CHARS}+ base64url characters (128 bits)",
        )
    if not isinstance(text, str) or len(text) > MAX_MEMO_CHARS:
        raise MemoError(
            MALFORMED, f"the memo of {DISCLOSURE_FIELD} is not text of at most {MAX_MEMO_CHARS} characters"
        )
    return text


def open_memo(disclosure: Any, memo_digest: str) -> str:
    """The memo text of `disclosure` if it is a memo's disclosure whose digest is `memo_digest`; raises
    `MemoError`: `MISMATCH` if it does not hash to the digest (checked first: any change to a disclosure
    is a mismatch), `MALFORMED` if it does but is not ``[salt, "memo", text]``."""
    if not _well_formed_text(disclosure):
        raise MemoError(MALFORMED, f"{DISCLOSURE_FIELD} is not base64url text")
    if digest(disclosure) != memo_digest:
        raise MemoError(MISMATCH, f"{DISCLOSURE_FIELD} does not hash to the signed {DIGEST_FIELD}")
    return memo_text(disclosure)


def _well_formed_text(disclosure: Any) -> bool:
    return (
        isinstance(disclosure, str)
        and len(disclosure) <= MAX_DISCLOSURE_CHARS
        and _B64URL.match(disclosure) is not None
    )
