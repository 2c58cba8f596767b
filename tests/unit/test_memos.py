"""Memo commitments (`smartcity_sdk.memos`, which `services.common.memos` imports): RFC 9901 disclosures and
digests, against recorded vectors, and every way a body's memo is refused (`services.common.memos`)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from services.common import memos as ledger_memos
from services.common.memos import checked_memo, take_disclosure
from smartcity_sdk import memos
from smartcity_sdk.disclosures import digest
from smartcity_sdk.memos import MemoError, commit_memo, memo_text, open_memo
from smartcity_sdk.signing import b64url_decode, b64url_encode

VECTORS = json.loads((Path(__file__).parent / "vectors" / "memos.json").read_text())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def test_the_recorded_vectors_are_reproduced_and_open() -> None:
    salt = VECTORS["salt"]
    for vector in VECTORS["memos"]:
        text = vector["text"]
        # Independently of the code under test: the RFC 9901 construction by hand.
        array = json.dumps([salt, "memo", text], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        by_hand = _b64url(array)
        assert by_hand == vector["disclosure"]
        assert _b64url(hashlib.sha256(by_hand.encode("ascii")).digest()) == vector["digest"]
        assert commit_memo(text, salt=salt) == (vector["disclosure"], vector["digest"])
        assert open_memo(vector["disclosure"], vector["digest"]) == text


def test_the_digest_is_rfc_9901s() -> None:
    assert digest(VECTORS["rfc9901"]["disclosure"]) == VECTORS["rfc9901"]["digest"]


def test_a_fresh_salt_of_128_bits_each_time() -> None:
    first, second = commit_memo("lunch"), commit_memo("lunch")
    assert first != second and first.digest != second.digest
    salt = json.loads(b64url_decode(first.disclosure))[0]
    assert len(b64url_decode(salt)) >= 16
    assert open_memo(first.disclosure, first.digest) == "lunch"


def test_a_disclosure_written_with_spaces_opens_its_own_digest() -> None:
    salt = VECTORS["salt"]
    spaced = _b64url(json.dumps([salt, "memo", "hi"]).encode())  # '["...", "memo", "hi"]' as in RFC 9901
    assert open_memo(spaced, digest(spaced)) == "hi"


def test_any_change_to_a_disclosure_is_a_mismatch() -> None:
    memo = commit_memo("rent for March")
    for i in range(len(memo.disclosure)):
        c = memo.disclosure[i]
        tampered = memo.disclosure[:i] + ("A" if c != "A" else "B") + memo.disclosure[i + 1 :]
        with pytest.raises(MemoError) as refused:
            open_memo(tampered, memo.digest)
        assert refused.value.kind == memos.MISMATCH
    other = commit_memo("rent for March")
    with pytest.raises(MemoError, match="does not hash") as refused:
        open_memo(other.disclosure, memo.digest)
    assert refused.value.kind == memos.MISMATCH


def _opened(array: object) -> str:
    disclosure = b64url_encode(json.dumps(array).encode())
    return open_memo(disclosure, digest(disclosure))


@pytest.mark.parametrize(
    ("disclosure", "kind"),
    [
        (None, memos.MALFORMED),
        (42, memos.MALFORMED),
        (["a"], memos.MALFORMED),
        ("", memos.MALFORMED),
        ("not base64url!", memos.MALFORMED),
        ("é", memos.MALFORMED),
        ("x" * (memos.MAX_DISCLOSURE_CHARS + 1), memos.MALFORMED),
        ("WyJh", memos.MISMATCH),  # base64url text: its hash is checked first, and is another
    ],
)
def test_what_is_not_base64url_text_is_malformed(disclosure: object, kind: str) -> None:
    with pytest.raises(MemoError) as refused:
        open_memo(disclosure, "x" * 43)
    assert refused.value.kind == kind


@pytest.mark.parametrize("text", ["WyJh", "_w", "WyJhIiwibWVtbyIsImIiXQ"])
def test_base64url_text_of_no_json_array_that_hashes_is_malformed(text: str) -> None:
    with pytest.raises(MemoError) as refused:
        open_memo(text, digest(text))
    assert refused.value.kind == memos.MALFORMED


@pytest.mark.parametrize(
    "array",
    [
        ["bWVtby10ZXN0LXNhbHQhIQ", "note", "hi"],  # another claim
        ["bWVtby10ZXN0LXNhbHQhIQ", "memo"],  # no text
        ["bWVtby10ZXN0LXNhbHQhIQ", "memo", "hi", "extra"],
        ["bWVtby10ZXN0LXNhbHQhIQ", "memo", 5],  # text not a string
        ["bWVtby10ZXN0LXNhbHQhIQ", "memo", "x" * (memos.MAX_MEMO_CHARS + 1)],  # too long
        ["short", "memo", "hi"],  # salt under 128 bits
        [123456789012345678901234, "memo", "hi"],
        {"salt": "bWVtby10ZXN0LXNhbHQhIQ", "memo": "hi"},
    ],
)
def test_a_disclosure_that_hashes_but_is_no_memo_is_malformed(array: object) -> None:
    with pytest.raises(MemoError) as refused:
        _opened(array)
    assert refused.value.kind == memos.MALFORMED


def test_the_longest_memo_opens() -> None:
    text = "🍕" * memos.MAX_MEMO_CHARS
    memo = commit_memo(text)
    assert len(memo.disclosure) <= memos.MAX_DISCLOSURE_CHARS
    assert open_memo(memo.disclosure, memo.digest) == text == memo_text(memo.disclosure)
    with pytest.raises(MemoError):
        commit_memo(text + "!")
    with pytest.raises(MemoError):
        commit_memo("hi", salt="short")


def test_a_body_pairs_a_signed_digest_with_its_disclosure() -> None:
    memo = commit_memo("lunch")
    signed = {"from": "a", "memo_digest": memo.digest, "sig": "s"}
    assert take_disclosure({**signed, "memo_disclosure": memo.disclosure}) == (signed, memo.disclosure)
    assert take_disclosure([1]) == ([1], None)
    assert checked_memo(signed, memo.disclosure) == "lunch"
    assert checked_memo({"from": "a"}, None) is None
    for body, kind in (
        ({"from": "a", "memo": "lunch"}, ledger_memos.PLAINTEXT),
        ({"from": "a", "memo": "lunch", "memo_disclosure": memo.disclosure}, ledger_memos.PLAINTEXT),
    ):
        with pytest.raises(MemoError) as refused:
            take_disclosure(body)
        assert refused.value.kind == kind
    for signed_object, disclosure, kind in (
        (signed, None, ledger_memos.DISCLOSURE_MISSING),
        ({"from": "a"}, memo.disclosure, ledger_memos.DIGEST_MISSING),
        ({**signed, "memo_digest": commit_memo("lunch").digest}, memo.disclosure, memos.MISMATCH),
    ):
        with pytest.raises(MemoError) as refused:
            checked_memo(signed_object, disclosure)
        assert refused.value.kind == kind
