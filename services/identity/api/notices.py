"""Notices: a notices-role key posts a signed notice to one person or to a group, and people read their inbox.

A group (``{"custody": "custodial"}``, ``{"credential": vct}``, ``{"aid_zone": zone}``) is stored once and
resolved when someone reads their inbox, so it reaches whoever belongs to it then: a person enrolled after the
notice still sees it, a holder whose credential was revoked, or who no longer holds AID, no longer does. The notice id is the signed object's id
(`requests.request_id`), so the same signed notice posted again is stored once. The inbox (`_notices`) is
also what a custodial person reads at a kiosk with their PIN (`api.wallets`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import SQLAlchemyError

from services.common import events
from services.common.aid_holder import AID
from services.common.consents import parse_time
from services.common.http import Problem
from services.common.openapi import answers, problems, raw_body, signed_by
from services.identity import requests
from services.identity.api import models
from services.identity.api.common import (
    NOTICE_PAGE,
    ROLE,
    SIGNED,
    UNAVAILABLE,
    _now,
    _settings,
    _signed,
    _store,
    _unavailable,
)
from services.identity.ledger_client import LedgerClient
from services.identity.service_client import ServiceRefusedError, ServiceUnavailableError

router = APIRouter(prefix="/v1")


def _notice_json(row: Any) -> dict[str, Any]:
    notice: dict[str, Any] = {
        "notice_id": row["notice_id"],
        "sender": row["sender"],
        "title": row["title"],
        "body": row["body"],
        "posted_at": events.rfc3339(row["posted_at"]),
        "notice": row["notice"],  # as the sender signed it, to re-verify; its group and expiry included
    }
    if row["group_kind"] is not None:
        notice["group"] = {row["group_kind"]: row["group_value"]}
    if row["expires_at"] is not None:
        notice["expires_at"] = events.rfc3339(row["expires_at"])
    return notice


async def _notices(request: Request, did_value: str, holder: str | None) -> dict[str, Any]:
    """`did_value`'s inbox now: their notices and their groups' notices, unexpired, newest first.

    Whether they hold AID is the ledger's to say of their AID holder key `holder` (none named: they hold none),
    asked only when a notice to their zone's AID holders waits.
    Without an answer from the ledger the inbox still shows everything else, and says which groups it could
    not resolve (``unresolved``), rather than failing the person at a kiosk."""
    store, now = _store(request), _now()
    unresolved: list[str] = []
    try:
        zone = await store.aid_zone_waiting(did_value, now)
        if zone is not None:
            try:
                holds_aid = holder is not None and await _holds_aid(request, holder)
            except ServiceUnavailableError:
                holds_aid = False
                unresolved.append("aid_zone")
            zone = zone if holds_aid else None
        rows = await store.notices_for(did_value, now, NOTICE_PAGE, aid_zone=zone)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    inbox: dict[str, Any] = {"notices": [_notice_json(row) for row in rows]}
    if unresolved:
        inbox["unresolved"] = unresolved
    return inbox


async def _holds_aid(request: Request, holder: str) -> bool:
    ledger: LedgerClient = request.app.state.ledger
    try:
        # Read as identity itself (a balance reader of the ledger): a self-held wallet's key is not here.
        account = await ledger.account(holder, request.app.state.city)
    except ServiceRefusedError as exc:
        if exc.status in (401, 403):
            # Not allowed to read balances (LEDGER_BALANCE_READERS lacks identity's key): the group is left
            # unresolved, never taken for "holds nothing".
            raise ServiceUnavailableError(f"the ledger refused identity's balance read: {exc}") from exc
        return False  # an account the ledger does not know holds nothing
    return account.get("balances", {}).get(AID, 0) > 0


@router.post(
    "/notices",
    status_code=201,
    tags=["notices"],
    summary="Post a notice to a person or a group (signed by a notices-role key)",
    response_model=models.NoticePosted,
    responses={
        **answers(models.NoticePosted, description="The same signed notice was posted before"),
        **problems(SIGNED, ROLE, (404, "The recipient is not a registered identity"), UNAVAILABLE),
    },
    openapi_extra=raw_body(requests.Notice, models.NOTICE, signers=[signed_by("sender")]),
)
async def post_notice(request: Request, response: Response) -> dict[str, Any]:
    settings = _settings(request)
    notice, body = await _signed(request, requests.Notice, "sender", settings.notice_senders, "notices")
    store = _store(request)
    notice_id = requests.request_id(body)
    expires_at = parse_time(notice.expires_at) if notice.expires_at is not None else None
    try:
        if notice.recipient is not None and await store.identity(notice.recipient) is None:
            raise Problem(404, "not-found", f"{notice.recipient} is not a registered identity.")
        created = await store.post_notice(notice_id, body, group=notice.group_key, expires_at=expires_at)
    except (SQLAlchemyError, OSError) as exc:
        raise _unavailable(request, exc) from exc
    response.status_code = 201 if created else 200
    return {"notice_id": notice_id}


@router.post(
    "/notices/inbox",
    tags=["notices"],
    summary="A person reads their notices and their groups' notices, unexpired, newest first (signed request)",
    response_model=models.Inbox,
    response_model_exclude_unset=True,
    responses=problems(SIGNED, UNAVAILABLE),
    openapi_extra=raw_body(requests.SelfRequest, models.REQUESTS["read-notices"], signers=[signed_by("did")]),
)
async def read_notices(request: Request) -> dict[str, Any]:
    query, _ = await _signed(request, requests.SelfRequest, "did")
    if query.action != "read-notices":
        raise Problem(422, "invalid-request", "action: must be read-notices.")
    return await _notices(request, query.did, query.aid_holder)
