"""Ledger HTTP routes of accounts: balances, histories and nonces, each a signed read by the account's holder or an
auditor (a wallet's money is personal), and the auditors' list of the largest holders."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from services.common.http import MAX_INT_PARAM, Problem
from services.common.openapi import problems
from services.common.signed_reads import authorise, signed_reader
from services.ledger.accounts import CITY, CURRENCIES, AccountError, Currency, check_account
from services.ledger.api import models
from services.ledger.api.routes import auditors, get_queries, get_store
from services.ledger.queries import LedgerQueries

router = APIRouter(prefix="/v1", tags=["ledger"])


async def _readable_account(
    request: Request, wallet: str, reader: str, *, what: str, balances_only: bool = False
) -> str:
    """`wallet` if `reader` (a signed read's did) may read its `what`: its holder or an auditor, or for balances
    only a balance reader (``LEDGER_BALANCE_READERS``); else a 403 problem."""
    account = _account(wallet)
    readers = await auditors(get_store(request))
    if balances_only:
        readers = readers | request.app.state.balance_readers
    authorise(reader, account, readers, what=what)
    return account


def _account(value: str) -> str:
    try:
        return check_account(value)
    except AccountError as exc:
        raise Problem(400, "invalid-account", str(exc)) from exc


@router.get(
    "/accounts",
    summary="The wallets holding the most of a currency (an auditor's signed read)",
    response_model=models.TopAccounts,
    responses=problems((403, "The reader does not hold the auditor role")),
)
async def top_accounts(
    request: Request,
    limit: int = Query(10, ge=1, le=1000),
    currency: Currency = Query(CITY),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    if reader not in await auditors(get_store(request)):
        raise Problem(
            403, "read-forbidden", f"{reader} does not hold the auditor role: wallets are personal."
        )
    wallets = await get_queries(request).top_wallets(currency, limit)
    return {"accounts": [{"wallet": wallet, "balance": balance} for wallet, balance in wallets]}


@router.get(
    "/accounts/{wallet}",
    summary="An account's balances (micro-units per currency): a signed read by its holder or an auditor",
    response_model=models.Account,
    responses=problems(
        (400, "Not an account"), (403, "The reader is not the holder, an auditor or a balance reader")
    ),
)
async def account(
    wallet: str,
    request: Request,
    queries: LedgerQueries = Depends(get_queries),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    held = await queries.balances(
        await _readable_account(request, wallet, reader, what="balances", balances_only=True)
    )
    return {"wallet": wallet, "balances": {currency: held.get(currency, 0) for currency in CURRENCIES}}


@router.get(
    "/accounts/{wallet}/transactions",
    summary="An account's transactions, newest first (leaf_index is null until sealed): a signed read by its "
    "holder or an auditor",
    response_model=models.AccountTransactions,
    responses=problems((400, "Not an account"), (403, "The reader is not the holder or an auditor")),
)
async def account_transactions(
    wallet: str,
    request: Request,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(
        None, ge=1, le=MAX_INT_PARAM, description="Only transactions with seq < before (paging)."
    ),
    queries: LedgerQueries = Depends(get_queries),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    account = await _readable_account(request, wallet, reader, what="transactions")
    items = await queries.account_transactions(account, limit, before)
    next_before = items[-1]["seq"] if len(items) == limit else None
    return {"transactions": items, "next_before": next_before}


@router.get(
    "/accounts/{wallet}/nonce",
    summary="A signer's last accepted nonce and the next one to sign with (0 and 1 at first): a signed read by "
    "its holder or an auditor",
    response_model=models.Nonce,
    responses=problems((400, "Not an account"), (403, "The reader is not the holder or an auditor")),
)
async def account_nonce(
    wallet: str, request: Request, reader: str = Depends(signed_reader)
) -> dict[str, Any]:
    # A signed read, as the balances are: the sequence of a wallet's nonces tells how often it pays.
    account = await _readable_account(request, wallet, reader, what="nonce")
    last = await get_queries(request).last_nonce(account)
    return {"wallet": wallet, "last_nonce": last, "next_nonce": last + 1}
