"""Ledger HTTP routes: balances, transactions, signed checkpoints, blocks and Merkle proofs."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from services.common import memos, schemas, signing
from services.common.events import now_rfc3339 as _now
from services.common.http import MAX_INT_PARAM, Problem, read_json_body
from services.common.openapi import answers, problems, raw_body, signed_by
from services.common.roles import Role
from services.common.signed_reads import authorise, signed_reader
from services.ledger import payments
from services.ledger.accounts import CITY, CURRENCIES, AccountError, Currency, check_account
from services.ledger.api import models
from services.ledger.memos import keeping
from services.ledger.store import LedgerStore, NotFoundError, OutOfRangeError, Receipt, Submission
from services.ledger.transactions import RejectedError

router = APIRouter(prefix="/v1", tags=["ledger"])

_TX_ID = re.compile(r"^[0-9a-f]{64}$")


def get_store(request: Request) -> LedgerStore:
    return request.app.state.store


async def auditors(store: LedgerStore) -> frozenset[str]:
    """The keys holding the auditor role on the chain now: they read any account."""
    return (await store.authority()).holders.get(Role.AUDITOR, frozenset())


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


def _tx_id(value: str) -> str:
    if not _TX_ID.match(value):
        raise Problem(400, "invalid-tx-id", f"{value!r} is not a transaction id (64 lowercase hex digits)")
    return value


MAX_BODY_BYTES = 16 * 1024
TRANSFER_SCHEMA = "transfers.v1.json"
COMMAND_SCHEMA = "issuer-commands.v1.json"
REJECTION_STATUS = {
    "bad-signature": 400,
    "self-transfer": 422,
    "already-expired": 422,
    "aid-by-grant-only": 422,
    "holder-is-a-wallet": 422,
    "aid-holder-aid-only": 422,
    "bad-postings": 422,
    "not-canonical": 422,
    "not-an-issuer": 403,
    "account-frozen": 403,
    "merchant-inactive": 403,
    "currency-not-accepted": 403,
    "city-outside-community": 403,
    "aid-merchants-only": 403,
    "aid-not-allowed": 403,
    "merchant-not-verified": 403,
    "unknown-grant": 404,
    # Authority commands and policy publications.
    "not-the-root": 403,
    "role-not-held": 403,
    "unknown-role": 422,
    "bad-key": 422,
    "bad-policy": 422,
}
"""HTTP status of each rejection code; the others (stale or reused nonce, funds, spent grant) are 409."""


MEMO_BESIDE = (
    "With memo_digest, the body carries beside the signed object one unsigned member, memo_disclosure (the RFC "
    '9901 disclosure base64url([salt, "memo", text]) opening the digest; services/common/memos.py).'
)
BAD_SIGNATURE = (400, "Malformed JSON, or a signature that does not verify or is not written canonically")
RECEIPT_AGAIN = answers(
    models.Receipt, description="The same object was settled before: its original receipt"
)


def signed_object_body(
    schema_file: str, signer: str, example: dict[str, Any], **kwargs: Any
) -> dict[str, Any]:
    """``openapi_extra`` of a route taking a signed object of `schema_file` signed by the did in `signer`."""
    return raw_body(schema_file, example, signers=[signed_by(signer, **kwargs)])


async def signed_body(request: Request, schema_file: str) -> dict[str, Any]:
    return checked_body(await read_json_body(request, MAX_BODY_BYTES), schema_file)


async def signed_body_and_memo(request: Request, schema_file: str) -> tuple[dict[str, Any], str | None]:
    """A signed transfer or command and the disclosure of its memo (`services.common.memos`): the body's one
    unsigned member ``memo_disclosure``, taken off before the schema and the signature are checked, then checked
    against the signed ``memo_digest``. A plaintext memo, a digest without its disclosure (or the reverse), a
    disclosure that does not open the digest or is not a memo's: 422, the problem type naming which."""
    body = await read_json_body(request, MAX_BODY_BYTES)
    try:
        signed, disclosure = memos.take_disclosure(body)
        signed = checked_body(signed, schema_file)
        memos.checked_memo(signed, disclosure)
    except memos.MemoError as exc:
        raise Problem(422, exc.kind, exc.detail) from exc
    return signed, disclosure


def checked_body(body: Any, schema_file: str) -> dict[str, Any]:
    """`body` if its schema takes it and its signature is written canonically; else a 422 or 400 problem."""
    try:
        schemas.validate_against(schema_file, body)
    except schemas.SchemaError as exc:
        field, _, message = str(exc).partition(": ")
        raise Problem(422, "invalid-body", str(exc), errors=[{"field": field, "message": message}]) from exc
    try:
        # Before any lookup: a signature written another way is refused, never taken for another object.
        signing.signature_bytes(body[signing.SIG_FIELD])
    except signing.SignatureError as exc:
        raise Problem(400, "bad-signature", str(exc)) from exc
    return body


def rejection(exc: RejectedError) -> Problem:
    """The problem answering a rejected submission (409 for a code without a status of its own)."""
    return Problem(REJECTION_STATUS.get(exc.code, 409), exc.code, exc.detail)


def answered(response: Response, receipt: Receipt) -> dict[str, Any]:
    """The receipt's JSON, with 201 for a new transaction and 200 for a retry of a settled one."""
    response.status_code = 201 if receipt.created else 200
    return receipt_json(receipt)


async def _submit(request: Request, response: Response, submission: Submission) -> dict[str, Any]:
    try:
        receipt = await get_store(request).submit(submission)
    except RejectedError as exc:
        raise rejection(exc) from exc
    return answered(response, receipt)


def receipt_json(receipt: Receipt) -> dict[str, Any]:
    return {
        "tx_id": receipt.tx_id,
        "status": "settled" if receipt.leaf_index is None else "sealed",
        "leaf_index": receipt.leaf_index,
        "block_height": receipt.block_height,
        "transaction": f"/v1/transactions/{receipt.tx_id}",
        "proof": f"/v1/transactions/{receipt.tx_id}/proof",
    }


def _not_found(exc: NotFoundError) -> Problem:
    return Problem(404, "not-found", str(exc))


def _out_of_range(exc: OutOfRangeError) -> Problem:
    return Problem(400, "out-of-range", str(exc))


@router.get(
    "/accounts",
    summary="The wallets holding the most of a currency (an auditor's signed read)",
    response_model=models.TopAccounts,
    responses=problems((403, "The reader does not hold the auditor role")),
)
async def top_accounts(
    limit: int = Query(10, ge=1, le=1000),
    currency: Currency = Query(CITY),
    store: LedgerStore = Depends(get_store),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    if reader not in await auditors(store):
        raise Problem(
            403, "read-forbidden", f"{reader} does not hold the auditor role: wallets are personal."
        )
    wallets = await store.top_wallets(currency, limit)
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
    store: LedgerStore = Depends(get_store),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    held = await store.balances(
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
    store: LedgerStore = Depends(get_store),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    account = await _readable_account(request, wallet, reader, what="transactions")
    items = await store.account_transactions(account, limit, before)
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
    last = await get_store(request).last_nonce(account)
    return {"wallet": wallet, "last_nonce": last, "next_nonce": last + 1}


@router.get(
    "/checkpoint",
    summary="The latest signed block header (signed tree head)",
    response_model=models.Checkpoint,
    responses=problems((404, "No block has been sealed yet")),
)
async def checkpoint(store: LedgerStore = Depends(get_store)) -> dict[str, Any]:
    header = await store.latest_header()
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
    height: int = Path(ge=0, le=MAX_INT_PARAM), store: LedgerStore = Depends(get_store)
) -> dict[str, Any]:
    try:
        header, tx_ids = await store.block(height)
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
async def transaction(tx_id: str, store: LedgerStore = Depends(get_store)) -> Response:
    try:
        record = await store.transaction_record(_tx_id(tx_id))
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
    "/consistency",
    summary="Consistency proof between two tree sizes (1 <= first <= second <= latest)",
    response_model=models.ConsistencyProof,
    responses=problems((400, "Sizes out of range")),
)
async def consistency(
    first: int = Query(ge=1, le=MAX_INT_PARAM),
    second: int = Query(ge=1, le=MAX_INT_PARAM),
    store: LedgerStore = Depends(get_store),
) -> dict[str, Any]:
    try:
        proof = await store.consistency_proof(first, second)
    except OutOfRangeError as exc:
        raise _out_of_range(exc) from exc
    return {"first": first, "second": second, "proof": [h.hex() for h in proof]}


@router.post(
    "/transfers",
    status_code=201,
    summary="Pay from a wallet: a transfer signed by its sender (200 with the original receipt on a retry)",
    description=MEMO_BESIDE,
    response_model=models.Receipt,
    responses={
        **RECEIPT_AGAIN,
        **problems(
            BAD_SIGNATURE,
            (
                403,
                "A frozen account or a currency rule (CITY only to the community, AID only to verified "
                "merchants of a granted category before expiry), each its own problem type",
            ),
            (409, "A used or stale nonce, or insufficient funds"),
        ),
    },
    openapi_extra=signed_object_body(
        TRANSFER_SCHEMA, "from", models.EXAMPLE_REQUESTS["transfer"], excludes=["memo_disclosure"]
    ),
)
async def transfer(request: Request, response: Response) -> dict[str, Any]:
    body, memo = await signed_body_and_memo(request, TRANSFER_SCHEMA)
    now = _now()
    submission = Submission(
        signed=body,
        record_key="transfer",
        signer=body["from"],
        tx_id=payments.transfer_tx_id(body["from"], body["nonce"]),
        plan=lambda facts: payments.plan_transfer(body, facts, now),
        recipient=body["to"],
        settled=None if memo is None else keeping(body, memo),
    )
    return await _submit(request, response, submission)


@router.post(
    "/issuer/commands",
    status_code=201,
    summary="An issuer command (mint, fund, grant, revoke, freeze, unfreeze) signed by an issuer key",
    description=MEMO_BESIDE,
    response_model=models.Receipt,
    responses={
        **RECEIPT_AGAIN,
        **problems(
            BAD_SIGNATURE,
            (403, "The signer does not hold the issuer role (not-an-issuer), or a currency rule"),
            (404, "An unknown grant (revoke)"),
            (409, "A used or stale nonce, insufficient funds in a pool, a spent grant"),
        ),
    },
    openapi_extra=signed_object_body(
        COMMAND_SCHEMA, "issuer", models.EXAMPLE_REQUESTS["command"], excludes=["memo_disclosure"]
    ),
)
async def issuer_command(request: Request, response: Response) -> dict[str, Any]:
    body, memo = await signed_body_and_memo(request, COMMAND_SCHEMA)
    now = _now()
    submission = Submission(
        signed=body,
        record_key="command",
        signer=body["issuer"],
        tx_id=payments.issuer_tx_id(body["issuer"], body["nonce"]),
        plan=lambda facts: payments.plan_command(body, facts, now),
        recipient=body.get("holder"),
        grant_id=body.get("grant_id"),
        settled=None if memo is None else keeping(body, memo),
    )
    return await _submit(request, response, submission)
