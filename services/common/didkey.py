"""did:key identifiers for Ed25519 keys: the SDK's codec (`smartcity_sdk.didkey`), imported here under the
names services use, so that the platform and its clients read and write every did:key one way.

A did:key is ``did:key:z`` + base58btc(multicodec 0xed01 || 32 public-key bytes); Ed25519 ones start
with ``did:key:z6Mk``.
"""

from __future__ import annotations

from smartcity_sdk.didkey import DID_KEY_PREFIX, DidKeyError, decode, encode, is_did_key, multibase

__all__ = ["DID_KEY_PREFIX", "DidKeyError", "decode", "encode", "is_did_key", "multibase"]
