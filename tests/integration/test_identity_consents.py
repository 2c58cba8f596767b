"""Consent through the identity API on a real broker and PostgreSQL: a signed change is stored, receipted and
published to city.consents.v1, where ConsentViews (what ingest asks) see a grant and, within 5 s, a revocation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from nacl import pwhash

from services.common import consents, events, signing
from services.common.consents import CITY, ConsentView
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import CONSENTS
from services.identity.app import create_app
from services.identity.settings import IdentitySettings
from tests.support.asgi import assert_problem, running
from tests.support.topics import end_offsets, records_published_during

REVOCATION_BOUND_S = 5.0


def change(subject: Keypair, action: str, **fields) -> dict:
    body = {
        "subject": subject.did,
        "category": "mobility",
        "grantee": CITY,
        "action": action,
        "purpose": "rewards for bike trips",
        "issued_at": events.now_rfc3339(),
        **fields,
    }
    return subject.sign(body)


async def _within(bound_s: float, condition: Callable[[], bool]) -> None:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < bound_s, "condition did not hold in time"
        await asyncio.sleep(0.02)


async def test_consent_changes_are_receipted_published_and_seen_by_every_view(
    platform_settings: PlatformSettings,
):
    bootstrap = platform_settings.bootstrap_servers
    alice = Keypair.generate()
    settings = IdentitySettings(
        pin_opslimit=pwhash.argon2id.OPSLIMIT_MIN, pin_memlimit=pwhash.argon2id.MEMLIMIT_MIN
    )
    views = [ConsentView(bootstrap, client_id=f"ingest-{i}") for i in range(2)]
    async with running(create_app(platform_settings, settings)) as client:
        try:
            for view in views:
                await asyncio.to_thread(view.start)
                assert await asyncio.to_thread(view.wait_ready, 30)
            start = await end_offsets(bootstrap, CONSENTS)

            grant = change(alice, "grant", until="2030-01-01T00:00:00Z")
            granted = await client.post("/v1/consents", json=grant)
            assert granted.status_code == 201, granted.text
            receipt = granted.json()["receipt"]
            signing.verify(receipt, "issuer")  # signed by the city's identity key
            assert receipt["consent_sha256"] == signing.sha256_hex(signing.canonical_bytes(grant))
            assert (receipt["status"], receipt["until"]) == ("granted", "2030-01-01T00:00:00.000Z")
            for view in views:
                await _within(REVOCATION_BOUND_S, lambda v=view: v.allows(alice.did, "mobility"))

            # A replay of the grant after a revocation cannot undo it.
            revoke = change(alice, "revoke")
            revoked = await client.post("/v1/consents", json=revoke)
            assert revoked.status_code == 201, revoked.text
            assert assert_problem(await client.post("/v1/consents", json=grant), 409)["type"].endswith(
                "stale-consent"
            )
            for view in views:
                await _within(REVOCATION_BOUND_S, lambda v=view: not v.allows(alice.did, "mobility"))

            published = await records_published_during(bootstrap, CONSENTS, start)
            assert [m.key().decode() for m in published] == [f"{alice.did}/mobility"] * 2
            values = [events.decode_json(m.value()) for m in published]
            assert [v["status"] for v in values] == ["granted", "revoked"]
            assert values[1]["consent"] == revoke  # the subject's signed object travels with the record
            assert consents.check_record(values[1]).status == "revoked"
            headers = events.headers_dict(published[0].headers())
            assert headers["ce_type"] == "city.consent.v1"

            listed = await client.post(
                "/v1/consents/query",
                json=alice.sign(
                    {"did": alice.did, "action": "list-consents", "issued_at": events.now_rfc3339()}
                ),
            )
            assert listed.status_code == 200, listed.text
            (only,) = listed.json()["consents"]
            assert (only["status"], only["consent"], only["receipt"]["status"]) == (
                "revoked",
                revoke,
                "revoked",
            )
        finally:
            for view in views:
                await asyncio.to_thread(view.close)


async def test_bad_consents_are_refused(platform_settings: PlatformSettings):
    alice = Keypair.generate()
    async with running(create_app(platform_settings)) as client:
        forged = {**change(alice, "grant"), "category": "energy"}
        assert_problem(await client.post("/v1/consents", json=forged), 400)
        assert_problem(
            await client.post("/v1/consents", json=change(alice, "grant", grantee="somebody")), 422
        )
        assert_problem(await client.post("/v1/consents", json=change(alice, "sell")), 422)
        old = change(alice, "grant", issued_at="2020-01-01T00:00:00Z")
        assert_problem(await client.post("/v1/consents", json=old), 400)
        assert_problem(await client.post("/v1/consents", content=b"{not json"), 400)
