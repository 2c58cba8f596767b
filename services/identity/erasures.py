"""Identity orchestrates a person's erasure (`services.common.erasure`): it records the request with its own
erasure (`store.erasures`), forwards the very request the person signed to ingest and then to the ledger,
each of which checks the signature itself and erases its own part, and records when each answered. What
failed (no answer, a 5xx, a refusal) is forwarded again every ``IDENTITY_ERASURE_RETRY_S`` until done; the
services answer a request they did before with their first answer, so a retry erases nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from services.common.consents import parse_time
from services.common.events import rfc3339
from services.identity.service_client import ServiceClient, ServiceRefusedError, ServiceUnavailableError
from services.identity.store import IdentityStore
from services.identity.store.erasures import PARTS, Part

log = logging.getLogger(__name__)


def _answered_at(body: Mapping[str, Any]) -> datetime:
    """When the service says it erased (its ``erased_at``), else now."""
    try:
        return parse_time(body["erased_at"])
    except (KeyError, ValueError):
        return datetime.now(UTC)


async def forward(
    store: IdentityStore, services: Mapping[Part, ServiceClient], row: Mapping[str, Any]
) -> Mapping[str, Any]:
    """Forward the erasure of `row` to each service that has not erased yet, recording each answer; the
    erasure as recorded afterwards. A service that fails is skipped (and retried later): the next is still
    asked."""
    request_id = row["request_id"]
    for part in PARTS:
        if row[f"{part}_erased_at"] is not None:
            continue
        try:
            answer = await services[part].erase(row["request"])
        except (ServiceUnavailableError, ServiceRefusedError) as exc:
            log.warning("erasure %s: %s has not erased yet: %s", request_id, part, exc)
            await store.erasure_failed(request_id, f"{part}: {exc}")
            continue
        row = await store.erasure_done(request_id, part, _answered_at(answer.body))
    return row


async def retry_erasures(
    store: IdentityStore, services: Mapping[Part, ServiceClient], interval_s: float
) -> None:
    """Every `interval_s`, forward again the erasures some service has not done, until cancelled."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            for row in await store.pending_erasures():
                await forward(store, services, row)
        except Exception:
            log.exception("retrying erasures failed; trying again in %.1fs", interval_s)


def erasure_status(row: Mapping[str, Any]) -> dict[str, Any]:
    """An erasure as identity answers it: who asked, when, and when each service completed its part."""
    completed = {
        part: rfc3339(row[f"{part}_erased_at"]) if row[f"{part}_erased_at"] else None
        for part in ("identity", *PARTS)
    }
    return {
        "request_id": row["request_id"],
        "did": row["did"],
        "status": "completed" if row["completed_at"] else "in-progress",
        "requested_at": rfc3339(row["requested_at"]),
        "completed": completed,
        "completed_at": rfc3339(row["completed_at"]) if row["completed_at"] else None,
        "close_wallet": bool(row["request"].get("close_wallet", False)),
        "attempts": row["attempts"],
        "request": row["request"],
    }
