"""did:key identifiers for Ed25519 keys.

A did:key is ``did:key:z`` + base58btc(multicodec 0xed01 || 32 public-key bytes); Ed25519 ones start
with ``did:key:z6Mk``.
"""

from __future__ import annotations

from functools import lru_cache

import base58

DID_KEY_PREFIX = "did:key:"
_MULTIBASE_BASE58BTC = "z"
_ED25519_PUB_MULTICODEC = b"\xed\x01"
_ED25519_KEY_LEN = 32


class DidKeyError(ValueError):
    """The string is not a did:key of an Ed25519 public key."""


def encode(public_key: bytes) -> str:
    """Return the did:key of a 32-byte Ed25519 public key."""
    if len(public_key) != _ED25519_KEY_LEN:
        raise DidKeyError(f"an Ed25519 public key has 32 bytes, got {len(public_key)}")
    return DID_KEY_PREFIX + multibase(public_key)


def multibase(public_key: bytes) -> str:
    """Return the multibase (base58btc) multicodec form ``z6Mk...`` of an Ed25519 public key."""
    return _MULTIBASE_BASE58BTC + base58.b58encode(_ED25519_PUB_MULTICODEC + public_key).decode("ascii")


def decode(did: str) -> bytes:
    """Return the 32 public-key bytes of an Ed25519 did:key, or raise `DidKeyError`."""
    if not isinstance(did, str) or not did.startswith(DID_KEY_PREFIX):
        raise DidKeyError("not a did:key")
    return _decoded(did)


@lru_cache(maxsize=100_000)
def _decoded(did: str) -> bytes:
    """`decode` of a string. Memoised: services check the same devices' and people's dids again and again
    (ingest every reading's device), and base58 decoding in Python costs about half a signature check. Only
    well-formed dids are kept (an error is not cached), each entry ~200 bytes."""
    encoded = did[len(DID_KEY_PREFIX) :]
    if not encoded.startswith(_MULTIBASE_BASE58BTC):
        raise DidKeyError("did:key must be multibase base58btc (start with 'z')")
    try:
        raw = base58.b58decode(encoded[1:])
    except ValueError as exc:
        raise DidKeyError("did:key is not valid base58btc") from exc
    if not raw.startswith(_ED25519_PUB_MULTICODEC):
        raise DidKeyError("did:key is not an Ed25519 key (multicodec 0xed01)")
    key = raw[len(_ED25519_PUB_MULTICODEC) :]
    if len(key) != _ED25519_KEY_LEN:
        raise DidKeyError(f"did:key holds {len(key)} key bytes, expected 32")
    return key


def is_did_key(value: object) -> bool:
    """True if `value` is a well-formed Ed25519 did:key."""
    try:
        decode(value)  # type: ignore[arg-type]
    except DidKeyError:
        return False
    return True
