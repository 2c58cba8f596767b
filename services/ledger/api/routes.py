"""Ledger HTTP routes: balances, transactions, signed checkpoints, blocks and Merkle proofs."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from services.common.http import Problem
from services.ledger.accounts import CITY, CURRENCIES, AccountError, Currency, check_account
from services.ledger.store import LedgerStore, NotFoundError, OutOfRangeError

router = APIRouter(prefix="/v1", tags=["ledger"])

_TX_ID = re.compile(r"^[0-9a-f]{64}$")


def get_store(request: Request) -> LedgerStore:
    return request.app.state.store


def _account(value: str) -> str:
    try:
        return check_account(value)
    except AccountError as exc:
        raise Problem(400, "invalid-account", str(exc)) from exc


def _tx_id(value: str) -> str:
    if not _TX_ID.match(value):
        raise Problem(400, "invalid-tx-id", f"{value!r} is not a transaction id (64 lowercase hex digits)")
    return value


def _not_found(exc: NotFoundError) -> Problem:
    return Problem(404, "not-found", str(exc))


def _out_of_range(exc: OutOfRangeError) -> Problem:
    return Problem(400, "out-of-range", str(exc))


@router.get("/accounts", summary="The wallets holding the most of a currency")
async def top_accounts(
    limit: int = Query(10, ge=1, le=1000),
    currency: Currency = Query(CITY),
    store: LedgerStore = Depends(get_store),
) -> dict[str, Any]:
    wallets = await store.top_wallets(currency, limit)
    return {"accounts": [{"wallet": wallet, "balance": balance} for wallet, balance in wallets]}


@router.get("/accounts/{wallet}", summary="An account's balances (micro-units per currency)")
async def account(wallet: str, store: LedgerStore = Depends(get_store)) -> dict[str, Any]:
    held = await store.balances(_account(wallet))
    return {"wallet": wallet, "balances": {currency: held.get(currency, 0) for currency in CURRENCIES}}


@router.get(
    "/accounts/{wallet}/transactions",
    summary="An account's transactions, newest first (leaf_index is null until sealed)",
)
async def account_transactions(
    wallet: str,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, description="Only transactions with seq < before (paging)."),
    store: LedgerStore = Depends(get_store),
) -> dict[str, Any]:
    items = await store.account_transactions(_account(wallet), limit, before)
    next_before = items[-1]["seq"] if len(items) == limit else None
    return {"transactions": items, "next_before": next_before}


@router.get("/checkpoint", summary="The latest signed block header (signed tree head)")
async def checkpoint(store: LedgerStore = Depends(get_store)) -> dict[str, Any]:
    header = await store.latest_header()
    if header is None:
        raise Problem(404, "no-checkpoint", "no block has been sealed yet")
    return header.to_json()


@router.get("/blocks/{height}", summary="A signed block header and the ids of its transactions in leaf order")
async def block(height: int, store: LedgerStore = Depends(get_store)) -> dict[str, Any]:
    try:
        header, tx_ids = await store.block(height)
    except NotFoundError as exc:
        raise _not_found(exc) from exc
    return {**header.to_json(), "tx_ids": tx_ids}


@router.get(
    "/transactions/{tx_id}",
    summary="A transaction record: exactly the JSON whose JCS bytes are its Merkle leaf",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
async def transaction(tx_id: str, store: LedgerStore = Depends(get_store)) -> Response:
    try:
        record = await store.transaction_record(_tx_id(tx_id))
    except NotFoundError as exc:
        raise _not_found(exc) from exc
    # The stored JCS bytes themselves: hashing the body gives the leaf hash, byte for byte.
    return Response(content=record, media_type="application/json")


@router.get("/transactions/{tx_id}/proof", summary="Inclusion proof of a sealed transaction")
async def inclusion_proof(
    tx_id: str,
    tree_size: int | None = Query(None, description="Default: the latest checkpoint's tree size."),
    store: LedgerStore = Depends(get_store),
) -> dict[str, Any]:
    try:
        proof = await store.inclusion_proof(_tx_id(tx_id), tree_size)
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
    "/consistency", summary="Consistency proof between two tree sizes (1 <= first <= second <= latest)"
)
async def consistency(first: int, second: int, store: LedgerStore = Depends(get_store)) -> dict[str, Any]:
    try:
        proof = await store.consistency_proof(first, second)
    except OutOfRangeError as exc:
        raise _out_of_range(exc) from exc
    return {"first": first, "second": second, "proof": [h.hex() for h in proof]}
