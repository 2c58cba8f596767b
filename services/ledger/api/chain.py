"""Ledger HTTP routes of the chain, public: the signed checkpoint, blocks, transaction records (the Merkle leaves'
exact bytes) and the inclusion and consistency proofs anyone checks them with."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from services.common.http import MAX_INT_PARAM, Problem
from services.common.openapi import answers, problems
from services.ledger.api import models
from services.ledger.api.routes import get_queries
from services.ledger.queries import LedgerQueries
from services.ledger.store import NotFoundError, OutOfRangeError

router = APIRouter(prefix="/v1", tags=["ledger"])

_TX_ID = re.compile(r"^[0-9a-f]{64}$")


def _tx_id(value: str) -> str:
    if not _TX_ID.match(value):
        raise Problem(400, "invalid-tx-id", f"{value!r} is not a transaction id (64 lowercase hex digits)")
    return value


def _not_found(exc: NotFoundError) -> Problem:
    return Problem(404, "not-found", str(exc))


def _out_of_range(exc: OutOfRangeError) -> Problem:
    return Problem(400, "out-of-range", str(exc))


@router.get(
    "/checkpoint",
    summary="The latest signed block header (signed tree head)",
    response_model=models.Checkpoint,
    responses=problems((404, "No block has been sealed yet")),
)
async def checkpoint(queries: LedgerQueries = Depends(get_queries)) -> dict[str, Any]:
    header = await queries.latest_header()
    if header is None:
        raise Problem(404, "no-checkpoint", "no block has been sealed yet")
    return header.to_json()


@router.get(
    "/blocks/{height}",
    summary="A signed block header and the ids of its transactions in leaf order",
    response_model=models.Block,
    responses=problems((404, "No block of that height")),
)
async def block(
    height: int = Path(ge=0, le=MAX_INT_PARAM), queries: LedgerQueries = Depends(get_queries)
) -> dict[str, Any]:
    try:
        header, tx_ids = await queries.block(height)
    except NotFoundError as exc:
        raise _not_found(exc) from exc
    return {**header.to_json(), "tx_ids": tx_ids}


@router.get(
    "/transactions/{tx_id}",
    summary="A transaction record: exactly the JSON whose JCS bytes are its Merkle leaf",
    response_class=Response,
    responses={
        **answers(models.TransactionRecord, models.RECORD, media_type="application/json"),
        **problems((400, "Not a transaction id"), (404, "No such transaction")),
    },
)
async def transaction(tx_id: str, queries: LedgerQueries = Depends(get_queries)) -> Response:
    try:
        record = await queries.transaction_record(_tx_id(tx_id))
    except NotFoundError as exc:
        raise _not_found(exc) from exc
    # The stored JCS bytes themselves: hashing the body gives the leaf hash, byte for byte.
    return Response(content=record, media_type="application/json")


@router.get(
    "/transactions/{tx_id}/proof",
    summary="Inclusion proof of a sealed transaction",
    response_model=models.InclusionProof,
    responses=problems(
        (400, "Not a transaction id, or a tree size beyond the latest"), (404, "No such sealed transaction")
    ),
)
async def inclusion_proof(
    tx_id: str,
    tree_size: int | None = Query(
        None, ge=1, le=MAX_INT_PARAM, description="Default: the latest checkpoint's tree size."
    ),
    queries: LedgerQueries = Depends(get_queries),
) -> dict[str, Any]:
    try:
        proof = await queries.inclusion_proof(_tx_id(tx_id), tree_size)
    except NotFoundError as exc:
        raise _not_found(exc) from exc
    except OutOfRangeError as exc:
        raise _out_of_range(exc) from exc
    return {
        "leaf_index": proof.leaf_index,
        "tree_size": proof.tree_size,
        "leaf_hash": proof.leaf_hash.hex(),
        "audit_path": [h.hex() for h in proof.audit_path],
    }


@router.get(
    "/consistency",
    summary="Consistency proof between two tree sizes (1 <= first <= second <= latest)",
    response_model=models.ConsistencyProof,
    responses=problems((400, "Sizes out of range")),
)
async def consistency(
    first: int = Query(ge=1, le=MAX_INT_PARAM),
    second: int = Query(ge=1, le=MAX_INT_PARAM),
    queries: LedgerQueries = Depends(get_queries),
) -> dict[str, Any]:
    try:
        proof = await queries.consistency_proof(first, second)
    except OutOfRangeError as exc:
        raise _out_of_range(exc) from exc
    return {"first": first, "second": second, "proof": [h.hex() for h in proof]}
