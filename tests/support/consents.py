"""Consent for tests: a subject's signed grant (or revocation) published to city.consents.v1 the way the
identity service publishes it, and waiting until the consent views that ingest asks have seen it."""

from __future__ import annotations

import asyncio
import json
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


LONG_AGO = "2020-01-01T00:00:00.000Z"
"""When the tests' standing grants are signed: before any reading a test sends (tests' readings carry fixed
or recent times, and a reading is decided on the consent in force at its own time)."""


def signed_change(
    subject: Keypair, category: str, action: str = "grant", issued_at: str = LONG_AGO, **fields: str
) -> dict:
    """A consent object signed by `subject`, with the `issued_at` given (the view does not check it against
    the clock; identity does)."""
    body = {
        "subject": subject.did,
        "category": category,
        "grantee": CITY,
        "action": action,
        "purpose": "test",
        "issued_at": issued_at,
        **fields,
    }
    return subject.sign(body)


def record_of(signed: dict) -> tuple[str, bytes]:
    """The (key, value) of the ``city.consents.v1`` record of a checked consent object, as identity writes it."""
    change = check_consent(signed)
    return change.key, json.dumps(change.record(datetime.now(UTC))).encode()


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
    issued_at: str | None = None,
) -> None:
    """Publish `subject`'s signed `action` of each category to the city on city.consents.v1 (signed now, or
    at `issued_at`), then wait until every view of `seen_by` answers accordingly (within `bound_s`)."""
    categories = list(categories)
    producer = KafkaProducer(bootstrap, client_id="test-consents")
    try:
        for category in categories:
            signed = (
                consent(subject, category, action)
                if issued_at is None
                else signed_change(subject, category, action, issued_at)
            )
            change = check_consent(signed)
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
    """Grant the city `categories` for `subject`, a standing grant signed long ago (`LONG_AGO`: readings made
    before the test granted it are within it too), and wait until the ingest `apps` see it."""
    await publish(bootstrap, subject, categories, seen_by=views(apps), issued_at=LONG_AGO)
