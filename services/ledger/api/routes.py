"""Ledger HTTP routes of payments: signed transfers and issuer commands; and what every route module of the
ledger shares (its store, the auditors, signed bodies, receipts, rejections as problems)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.common import memos, schemas, signing
from services.common.events import now_rfc3339 as _now
from services.common.http import Problem, read_json_body
from services.common.openapi import answers, problems, raw_body, signed_by
from services.common.roles import Role
from services.ledger import payments
from services.ledger.api import models
from services.ledger.memos import keeping
from services.ledger.payment_store import PaymentStore, Submission
from services.ledger.queries import LedgerQueries
from services.ledger.store import LedgerStore, Receipt
from services.ledger.transactions import RejectedError

router = APIRouter(prefix="/v1", tags=["ledger"])


def get_store(request: Request) -> LedgerStore:
    return request.app.state.store


def get_queries(request: Request) -> LedgerQueries:
    return LedgerQueries(request.app.state.store)


async def auditors(store: LedgerStore) -> frozenset[str]:
    """The keys holding the auditor role on the chain now: they read any account."""
    return (await store.authority()).holders.get(Role.AUDITOR, frozenset())


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
        receipt = await PaymentStore(get_store(request)).submit(submission)
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
