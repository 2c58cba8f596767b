"""Paying from a custodial wallet, and its statement, at a kiosk with the holder's PIN.

A person without a phone cannot sign a ledger transfer; the city holds their key sealed under their PIN. When
the PIN opens the wallet (`wallets._open_wallet`: the same lockout and uniform answers as every PIN route),
identity signs the transfer exactly as a self-custodial wallet would and submits it to the ledger over HTTP.
The ledger alone decides (funds, AID and CITY rules); its refusals are passed on with their own type. AID is
paid from the person's AID holder key (`services.common.aid_holder`), derived from their wallet key once the
PIN opened it, so the public chain never links their wallet to their AID; the statement shows both.

Each payment carries the caller's ``request_id``: the signed transfer is stored under it before it is sent,
so a retry (after a lost answer, a 503) resubmits the very same signed object, which the ledger settles at
most once, and a settled request answers its stored receipt without calling the ledger at all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import Field, StringConstraints, field_validator
from sqlalchemy.exc import SQLAlchemyError

from services.common.aid_holder import AID, aid_holder
from services.common.http import PROBLEM_BASE, Problem
from services.common.memos import commit_memo, memo_text
from services.common.openapi import answers, problems, raw_body
from services.common.signing import Keypair
from services.identity import requests
from services.identity.api import models
from services.identity.api.common import (
    PIN_PROBLEMS,
    PinBody,
    _body,
    _settings,
    _store,
    _unavailable,
)
from services.identity.api.wallets import _open_wallet
from services.identity.ledger_client import LedgerClient
from services.identity.metrics import CUSTODIAL_TRANSFERS
from services.identity.service_client import ServiceRefusedError, ServiceUnavailableError
from services.identity.store import SignTransfer
from services.ledger.api.models import Receipt
from smartcity_sdk.memos import sign_with_memo

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

MAX_MICRO_UNITS = 9_007_199_254_740_991
"""The largest amount the ledger's schema takes (2^53 - 1, exact in every JSON reader)."""
RENONCE_ATTEMPTS = 3
"""Submissions of one request before giving up with a 503, when other payments of the same holder keep
overtaking its nonce."""
_PROBLEM_FIELDS = frozenset({"type", "title", "status", "detail", "instance", "headers"})


Memo = Annotated[str, StringConstraints(min_length=1, max_length=280, pattern=requests._TEXT)]
RequestId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=requests._PRINTABLE)]


class CustodialTransferBody(PinBody):
    to: str = Field(description="did:key of the wallet paid.")
    amount: int = Field(gt=0, le=MAX_MICRO_UNITS, description="Micro-units (a JSON integer above 0).")
    currency: Literal["CITY", "AID"]
    memo: Memo | None = None
    request_id: RequestId = Field(
        description="The caller's id of this payment: the same id again is the same payment, never a second."
    )

    _to = field_validator("to")(requests._did_key)


def _ledger(request: Request) -> LedgerClient:
    return request.app.state.ledger


def _ledger_unavailable(request: Request, exc: ServiceUnavailableError) -> Problem:
    log.warning("ledger unavailable: %s", exc)
    return Problem(
        503,
        "ledger-unavailable",
        "The ledger did not answer; retry (a payment with the same request_id), nothing is paid twice.",
        headers={"Retry-After": str(_settings(request).retry_after_s)},
    )


def _ledger_kind(exc: ServiceRefusedError) -> str | None:
    """The ledger's problem kind, if its type is one of the platform's."""
    kind = str(exc.problem.get("type", ""))
    return kind.removeprefix(PROBLEM_BASE) if kind.startswith(PROBLEM_BASE) else None


def _refused(exc: ServiceRefusedError) -> Problem:
    """The ledger's refusal as this service's problem: its status, type, detail and extensions."""
    problem = exc.problem
    extensions = {
        k: v
        for k, v in problem.items()
        if k not in _PROBLEM_FIELDS and isinstance(k, str) and k.isidentifier()
    }
    kind = _ledger_kind(exc)
    if kind is None:
        kind, extensions["ledger_type"] = "ledger-refused", problem.get("type")
    title = problem.get("title")
    return Problem(
        exc.status,
        kind,
        str(problem.get("detail") or "The ledger refused it."),
        title=title if isinstance(title, str) else None,
        **extensions,
    )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _asked(transfer: Mapping[str, Any]) -> dict[str, Any]:
    """What a stored payment asked for: payer, payee, amount, currency and the memo's text (its commitment's
    salt, the nonce identity chose and the signature aside)."""
    asked = {k: transfer[k] for k in ("from", "to", "amount", "currency")}
    if "memo_disclosure" in transfer:
        asked["memo"] = memo_text(transfer["memo_disclosure"])
    return asked


@router.post(
    "/custodial-wallets/{did_value}/transfers",
    status_code=201,
    tags=["payments"],
    summary="Pay from a custodial wallet with the holder's PIN: identity signs the transfer, the ledger decides",
    response_model=Receipt,
    responses={
        **answers(Receipt, description="This request_id was paid before: its receipt, nothing paid again"),
        **PIN_PROBLEMS,
        **problems(
            (400, "The ledger refused the transfer (its problem type)"),
            (404, "The ledger refused the transfer (its problem type: unknown-grant)"),
            (
                409,
                "request_id names another payment (request-id-reused), or the ledger refused it: "
                "insufficient-funds, ...",
            ),
            (
                503,
                "The ledger did not answer (ledger-unavailable), or other payments of the wallet kept going "
                "first (busy-wallet): retry with the same request_id",
            ),
        ),
    },
    openapi_extra=raw_body(CustodialTransferBody, models.REQUESTS["custodial-transfer"]),
)
async def pay(did_value: str, request: Request, response: Response) -> dict[str, Any]:
    body = await _body(request, CustodialTransferBody)
    person, _ = await _open_wallet(request, did_value, body.pin)
    payer = aid_holder(person) if body.currency == AID else person
    wanted: dict[str, Any] = {
        "from": payer.did,
        "to": body.to,
        "amount": body.amount,
        "currency": body.currency,
    }
    # The memo goes to the chain as a salted digest only; its disclosure travels beside the signed transfer
    # (stored with it, so a retry sends the very same pair) and the ledger keeps it for the parties.
    memo = commit_memo(body.memo) if body.memo is not None else None
    store = _store(request)

    def sign(nonce: int) -> dict[str, Any]:
        # One nonce sequence per person: the holder key's nonces are a rising part of it.
        return sign_with_memo(payer, {**wanted, "nonce": nonce}, memo)

    try:
        row, _ = await store.custodial_transfer(person.did, body.request_id, sign, floor=_now_ms())
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    if _asked(row["transfer"]) != (wanted if body.memo is None else {**wanted, "memo": body.memo}):
        raise Problem(
            409, "request-id-reused", f"request_id {body.request_id!r} names another payment of this wallet."
        )
    for _ in range(RENONCE_ATTEMPTS):
        if row["receipt"] is not None:
            CUSTODIAL_TRANSFERS.labels("repeated").inc()
            response.status_code = 200
            return dict(row["receipt"])
        try:
            answer = await _ledger(request).transfer(dict(row["transfer"]))
        except ServiceUnavailableError as exc:
            CUSTODIAL_TRANSFERS.labels("ledger-unavailable").inc()
            raise _ledger_unavailable(request, exc) from exc
        except ServiceRefusedError as exc:
            if _ledger_kind(exc) != "stale-nonce":
                CUSTODIAL_TRANSFERS.labels("refused").inc()
                raise _refused(exc) from exc
            # Another payment of this holder settled a higher nonce first: this transfer can never settle
            # now, so signing it again with a fresh nonce cannot pay twice.
            row = await _renonce(request, person, body.request_id, row["nonce"], sign)
            continue
        try:
            receipt = await store.record_receipt(person.did, body.request_id, answer.body)
        except (SQLAlchemyError, OSError) as exc:
            # Settled but not noted: a retry resubmits the same signed transfer and gets its receipt.
            raise _unavailable(request, exc) from exc
        CUSTODIAL_TRANSFERS.labels("paid").inc()
        return dict(receipt)
    raise Problem(
        503,
        "busy-wallet",
        "Other payments of this wallet kept going first; retry with the same request_id.",
        headers={"Retry-After": str(_settings(request).retry_after_s)},
    )


async def _renonce(
    request: Request, person: Keypair, request_id: str, stale: int, sign: SignTransfer
) -> Mapping[str, Any]:
    """The payment's row after signing it again with a fresh nonce (or as another caller left it)."""
    try:
        return await _store(request).renonce_transfer(person.did, request_id, stale, sign, floor=_now_ms())
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc


@router.post(
    "/custodial-wallets/{did_value}/statement",
    tags=["payments"],
    summary="A custodial holder's balances and latest transactions on the ledger, at a kiosk with their PIN",
    response_model=models.Statement,
    responses={
        **PIN_PROBLEMS,
        **problems((503, "The database or the ledger did not answer (ledger-unavailable)")),
    },
    openapi_extra=raw_body(PinBody, models.PIN),
)
async def statement(did_value: str, request: Request) -> dict[str, Any]:
    body = await _body(request, PinBody)
    person, _ = await _open_wallet(request, did_value, body.pin)
    holder = aid_holder(person)
    ledger, size = _ledger(request), _settings(request).statement_size
    try:
        # Signed as the holder: the PIN opened their key, so the kiosk reads as they would.
        wallet, aid, wallet_history, aid_history = await asyncio.gather(
            ledger.account(person.did, person),
            ledger.account(holder.did, holder),
            ledger.transactions(person.did, size, person),
            ledger.transactions(holder.did, size, holder),
        )
    except ServiceUnavailableError as exc:
        raise _ledger_unavailable(request, exc) from exc
    except ServiceRefusedError as exc:
        raise _refused(exc) from exc
    merged = sorted(
        [*wallet_history["transactions"], *aid_history["transactions"]], key=lambda tx: -tx["seq"]
    )
    return {
        "did": person.did,
        "aid_holder": holder.did,
        # AID is held by the AID holder key alone; the other currencies by the wallet.
        "balances": {**wallet["balances"], AID: aid["balances"].get(AID, 0)},
        "transactions": merged[:size],
        "more": len(merged) > size
        or any(h.get("next_before") is not None for h in (wallet_history, aid_history)),
    }


@router.post(
    "/custodial-wallets/{did_value}/aid-holder",
    tags=["payments"],
    summary="A custodial person's AID holder key, at a kiosk with their PIN: the account the city grants them "
    "AID to, which the public chain cannot link to their wallet",
    response_model=models.AidHolder,
    responses=PIN_PROBLEMS,
    openapi_extra=raw_body(PinBody, models.PIN),
)
async def custodial_aid_holder(did_value: str, request: Request) -> dict[str, Any]:
    body = await _body(request, PinBody)
    person, _ = await _open_wallet(request, did_value, body.pin)
    return {"did": person.did, "aid_holder": aid_holder(person).did}
