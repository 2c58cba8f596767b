"""Identity HTTP routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from services.common.didkey import DidKeyError
from services.common.http import Problem
from services.identity import did

router = APIRouter(prefix="/v1", tags=["identities"])


@router.get("/identities/{did_value}", summary="Resolve a did:key to its public key and DID document")
async def resolve_identity(did_value: str) -> dict[str, Any]:
    try:
        return did.resolve(did_value)
    except DidKeyError as exc:
        raise Problem(400, "invalid-did", f"{did_value!r} is not an Ed25519 did:key: {exc}") from exc
