"""DID resolution for did:key (pure): the DID document of an Ed25519 did:key."""

from __future__ import annotations

from typing import Any

from services.common import didkey
from services.common.signing import b64url_encode

DID_CONTEXT = ["https://www.w3.org/ns/did/v1", "https://w3id.org/security/multikey/v1"]


def resolve(did: str) -> dict[str, Any]:
    """The resolution of a did:key: its public key (multibase, JWK, hex) and DID document.

    Raises `didkey.DidKeyError` when `did` is not an Ed25519 did:key.
    """
    public_key = didkey.decode(did)
    multibase = didkey.multibase(public_key)
    method_id = f"{did}#{multibase}"
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(public_key)}
    return {
        "did": did,
        "public_key_multibase": multibase,
        "public_key_hex": public_key.hex(),
        "public_key_jwk": jwk,
        "did_document": {
            "@context": DID_CONTEXT,
            "id": did,
            "verificationMethod": [
                {"id": method_id, "type": "Multikey", "controller": did, "publicKeyMultibase": multibase}
            ],
            "authentication": [method_id],
            "assertionMethod": [method_id],
        },
    }
