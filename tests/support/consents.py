"""Consent for tests: a subject's signed grant (or revocation) published to city.consents.v1 the way the
identity service publishes it, and waiting until the consent views that ingest asks have seen it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from fastapi import FastAPI

from services.common import events
from services.common.consents import CITY, ConsentView, check_consent
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.signing import Keypair
from services.common.topics import CONSENTS

REVOCATION_BOUND_S = 5.0
"""How soon a consent change must reach every ingest instance (the issue's bound)."""

SETUP_BOUND_S = 30.0
"""How long a test's set-up may wait for a change to be seen (generous: not what is being tested)."""


def consent(subject: Keypair, category: str, action: str = "grant", grantee: str = CITY) -> dict:
    """A consent object signed by `subject`, as a person's wallet builds it for POST /v1/consents."""
    body = {
        "subject": subject.did,
        "category": category,
        "grantee": grantee,
        "action": action,
        "purpose": "test",
        "issued_at": events.now_rfc3339(),
    }
    return subject.sign(body)


async def within(bound_s: float, condition: Callable[[], bool], what: str = "condition") -> None:
    """Poll `condition` until it holds; fail if it did not within `bound_s`."""
    deadline = time.monotonic() + bound_s
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not hold within {bound_s}s"
        await asyncio.sleep(0.02)


def views(apps: Iterable[FastAPI]) -> list[ConsentView]:
    """The consent views of running ingest apps."""
    return [app.state.consents for app in apps]


async def publish(
    bootstrap: str,
    subject: Keypair,
    categories: Iterable[str],
    *,
    action: str = "grant",
    seen_by: Iterable[ConsentView] = (),
    bound_s: float = SETUP_BOUND_S,
) -> None:
    """Publish `subject`'s signed `action` of each category to the city on city.consents.v1, then wait
    until every view of `seen_by` answers accordingly (within `bound_s`)."""
    categories = list(categories)
    producer = KafkaProducer(bootstrap, client_id="test-consents")
    try:
        for category in categories:
            change = check_consent(consent(subject, category, action))
            await producer.send(OutgoingRecord(CONSENTS, change.key, change.record(datetime.now(UTC))))
    finally:
        await asyncio.to_thread(producer.close)
    granted = action == "grant"
    for view in seen_by:
        for category in categories:
            await within(
                bound_s,
                lambda v=view, c=category: v.ready and v.allows(subject.did, c) == granted,
                f"{action} of {category} seen",
            )


async def grant(
    bootstrap: str, subject: Keypair, *apps: FastAPI, categories: Iterable[str] = ("environment",)
) -> None:
    """Grant the city `categories` for `subject` and wait until the ingest `apps` see it."""
    await publish(bootstrap, subject, categories, seen_by=views(apps))
