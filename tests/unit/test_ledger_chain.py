"""Block headers: signing, hashing, parsing and chain links."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace

import pytest
import rfc8785
from nacl.signing import VerifyKey

from services.common import didkey, schemas, topics
from services.common.signing import Keypair, b64url_decode
from services.ledger.chain import (
    GENESIS_PREVIOUS_HASH,
    BlockHeader,
    ChainError,
    ChainLinkError,
    HeaderFormatError,
    HeaderSignatureError,
    UnexpectedKeyError,
    next_header,
    verify_header,
    verify_link,
)

KEY = Keypair.from_seed(bytes(range(32)))
NOW = "2026-11-21T10:00:00.250Z"


def chain_of(sizes: list[int], keypair: Keypair = KEY) -> list[BlockHeader]:
    headers: list[BlockHeader] = []
    for size in sizes:
        previous = headers[-1] if headers else None
        root = hashlib.sha256(str(size).encode()).digest()
        headers.append(next_header(previous, keypair, tree_size=size, root_hash=root, timestamp=NOW))
    return headers


def test_signature_is_ed25519_over_the_jcs_of_the_header_without_signature() -> None:
    (header,) = chain_of([3])
    body = header.to_json()
    assert set(body) == {
        "height",
        "previous_hash",
        "tree_size",
        "root_hash",
        "timestamp",
        "public_key",
        "signature",
    }
    schemas.validate(topics.LEDGER_CHECKPOINTS, body)
    signature = b64url_decode(body.pop("signature"))
    VerifyKey(didkey.decode(KEY.did)).verify(rfc8785.dumps(body), signature)  # independent of chain.py
    assert header.public_key == KEY.did
    verify_header(header, KEY.did)
    assert header.hash() == hashlib.sha256(rfc8785.dumps(header.to_json())).hexdigest()


def test_a_chain_links_by_previous_hash() -> None:
    headers = chain_of([1, 5, 5, 9])
    assert headers[0].height == 0 and headers[0].previous_hash == GENESIS_PREVIOUS_HASH
    verify_link(None, headers[0])
    for previous, header in itertools.pairwise(headers):
        verify_header(header, KEY.did)
        verify_link(previous, header)
        assert header.previous_hash == previous.hash()
        assert header.height == previous.height + 1


@pytest.mark.parametrize(
    "change",
    [
        {"height": 7},
        {"tree_size": 4},
        {"root_hash": "ab" * 32},
        {"previous_hash": "cd" * 32},
        {"timestamp": "2026-11-21T10:00:01.250Z"},
        {"public_key": Keypair.generate().did},
    ],
)
def test_any_tampered_field_breaks_the_signature(change: dict[str, object]) -> None:
    (header,) = chain_of([3])
    tampered = replace(header, **change)
    with pytest.raises(HeaderSignatureError):
        verify_header(tampered)


def test_only_the_trusted_key_is_accepted() -> None:
    (foreign,) = chain_of([3], Keypair.generate())
    verify_header(foreign)  # self-consistent ...
    with pytest.raises(UnexpectedKeyError):
        verify_header(foreign, KEY.did)  # ... but not the ledger's


def test_broken_links_are_detected() -> None:
    first, second = chain_of([2, 4])
    with pytest.raises(ChainLinkError):
        verify_link(None, second)
    with pytest.raises(ChainLinkError):
        verify_link(first, replace(second, previous_hash="00" * 32))
    with pytest.raises(ChainLinkError):
        verify_link(first, replace(second, height=5))
    with pytest.raises(ChainLinkError):
        verify_link(second, next_header(second, KEY, tree_size=3, root_hash=b"\x00" * 32, timestamp=NOW))
    with pytest.raises(ChainLinkError):
        verify_link(None, replace(first, previous_hash="11" * 32))


def test_parsing_round_trips_and_rejects_malformed_headers() -> None:
    (header,) = chain_of([3])
    assert BlockHeader.from_json(header.to_json()) == header
    good = header.to_json()
    for bad in (
        [],
        {k: v for k, v in good.items() if k != "root_hash"},
        {**good, "tx_ids": []},
        {**good, "height": True},
        {**good, "height": -1},
        {**good, "tree_size": "3"},
        {**good, "root_hash": "AB" * 32},
        {**good, "previous_hash": "00"},
        {**good, "timestamp": "yesterday"},
        {**good, "public_key": "did:key:nope"},
        {**good, "signature": "!!"},
        {**good, "signature": "AAAA"},
    ):
        with pytest.raises(HeaderFormatError):
            BlockHeader.from_json(bad)


def test_errors_share_one_base() -> None:
    for error in (HeaderFormatError, HeaderSignatureError, UnexpectedKeyError, ChainLinkError):
        assert issubclass(error, ChainError) and issubclass(error, ValueError)
