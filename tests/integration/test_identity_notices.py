"""Notices that reach people (issue 13, item 6), on the real broker and PostgreSQL: a notice to a group (all
custodial wallets, holders of a credential type, the AID holders of a zone) is stored once and resolved when each person reads their
inbox; notices expire; the sender's signature covers the group and the expiry; bad bodies are 422 problems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from services.common import embedded, events, signing
from services.common.aid_holder import aid_holder
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.identity.app import create_app as create_identity
from tests.integration.test_identity_api import Roles, identity_dsn, identity_service, issue, register, signed
from tests.integration.test_identity_custodial_payments import PIN, identity_settings, ledger
from tests.support.asgi import assert_problem, running

pytestmark = pytest.mark.integration

RESIDENT = "https://smartcity.example/credentials/resident/v1"
SHELTER = {"custody": "custodial"}


def at(moment: datetime) -> str:
    return events.rfc3339(moment)


def notice(roles: Roles, *, issued_at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    """A notice signed by the notices-role key; `fields` name its addressee, expiry and overrides."""
    body = {
        "sender": roles.notices.did,
        "title": "Shelter beds tonight",
        "body": "40 beds at Canal St.",
        **fields,
    }
    return roles.notices.sign({"issued_at": at(issued_at or datetime.now(UTC)), **body})


async def enrol(client: httpx.AsyncClient, roles: Roles, pin: str, ago_s: int) -> str:
    """A new custodial wallet; `ago_s` makes each enrolment order distinct (the same order is one wallet)."""
    order = roles.caseworker.sign(
        {
            "caseworker": roles.caseworker.did,
            "action": "enrol",
            "issued_at": at(datetime.now(UTC) - timedelta(seconds=ago_s)),
        }
    )
    response = await client.post("/v1/custodial-wallets", json={"enrolment": order, "pin": pin})
    assert response.status_code == 201, response.text
    return response.json()["did"]


async def kiosk(client: httpx.AsyncClient, did: str, pin: str) -> list[dict[str, Any]]:
    response = await client.post(f"/v1/custodial-wallets/{did}/notices", json={"pin": pin})
    assert response.status_code == 200, response.text
    return response.json()["notices"]


async def inbox(client: httpx.AsyncClient, person: Keypair, **extra: Any) -> list[dict[str, Any]]:
    response = await client.post(
        "/v1/notices/inbox", json=signed(person, did=person.did, action="read-notices", **extra)
    )
    assert response.status_code == 200, response.text
    return response.json()["notices"]


async def post(client: httpx.AsyncClient, body: dict[str, Any], status: int = 201) -> str:
    response = await client.post("/v1/notices", json=body)
    assert response.status_code == status, response.text
    return response.json()["notice_id"]


async def sql(platform: PlatformSettings, query: str, *args: Any) -> Any:
    """Run `query` on the identity database (to count rows, or to move an expiry into the past)."""
    conn = await asyncpg.connect(identity_dsn(platform))
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


async def test_a_notice_to_all_custodial_wallets_reaches_each_of_them_and_is_stored_once(
    platform_settings: PlatformSettings,
):
    async with identity_service(platform_settings) as (client, roles):
        ann = await enrol(client, roles, "1357", ago_s=3)
        ben = await enrol(client, roles, "2468", ago_s=2)
        sam = Keypair.generate()  # holds their own key
        await register(client, sam)

        tomorrow_morning = datetime.now(UTC).replace(hour=7, minute=0, second=0, microsecond=0) + timedelta(
            days=1
        )
        shelter = notice(roles, group=SHELTER, expires_at=at(tomorrow_morning))
        notice_id = await post(client, shelter)
        assert await post(client, shelter, status=200) == notice_id  # the same signed notice: stored once
        assert await sql(platform_settings, "SELECT count(*) FROM notices") == 1

        for did, pin in ((ann, "1357"), (ben, "2468")):
            (seen,) = await kiosk(client, did, pin)
            assert seen["notice_id"] == notice_id and seen["title"] == "Shelter beds tonight"
            assert seen["group"] == SHELTER and seen["expires_at"] == at(tomorrow_morning)
            assert seen["notice"] == shelter
            signing.verify(seen["notice"], "sender")  # the sender's signature, group and expiry included
        assert await inbox(client, sam) == []

        # The group is resolved when one reads: someone enrolled after the notice sees it too ...
        cleo = await enrol(client, roles, "9753", ago_s=1)
        assert [n["notice_id"] for n in await kiosk(client, cleo, "9753")] == [notice_id]
        # ... and someone who took their key home is no longer in it.
        exported = await client.post(f"/v1/custodial-wallets/{ben}/export", json={"pin": "2468"})
        assert exported.status_code == 200, exported.text
        ben_key = Keypair.from_seed(signing.b64url_decode(exported.json()["seed"]))
        assert await inbox(client, ben_key) == []
        assert await sql(platform_settings, "SELECT count(*) FROM notices") == 1


async def test_a_notice_to_a_credential_type_reaches_its_valid_holders_only(
    platform_settings: PlatformSettings,
):
    async with identity_service(platform_settings) as (client, roles):
        holder, other = Keypair.generate(), Keypair.generate()
        for person in (holder, other):
            await register(client, person)
        credential = await issue(client, roles, holder.did)
        residents = await post(client, notice(roles, title="Resident survey", group={"credential": RESIDENT}))
        await post(
            client, notice(roles, title="Taxi drivers", group={"credential": "https://example/taxi/v1"})
        )
        direct = await post(client, notice(roles, title="Your appointment", recipient=holder.did))

        # Newest first: the notice to the holder alone was posted last.
        assert [n["notice_id"] for n in await inbox(client, holder)] == [direct, residents]
        assert await inbox(client, other) == []

        revocation = signed(
            roles.issuer,
            issuer=roles.issuer.did,
            action="revoke-credential",
            credential_id=credential["credential_id"],
        )
        revoked = await client.post(
            f"/v1/credentials/{credential['credential_id']}/revocation", json=revocation
        )
        assert revoked.status_code == 200, revoked.text
        assert [n["notice_id"] for n in await inbox(client, holder)] == [direct]


async def test_expired_notices_no_longer_show(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        person = Keypair.generate()
        await register(client, person)
        dave = await enrol(client, roles, "4321", ago_s=0)
        now = datetime.now(UTC)

        standing = await post(client, notice(roles, title="Standing", recipient=person.did))
        # Signed two minutes ago (within the allowed skew), expired a minute ago: accepted, never shown.
        await post(
            client,
            notice(
                roles,
                title="Gone",
                recipient=person.did,
                issued_at=now - timedelta(minutes=2),
                expires_at=at(now - timedelta(minutes=1)),
            ),
        )
        soon = await post(
            client, notice(roles, title="Soon", recipient=person.did, expires_at=at(now + timedelta(hours=1)))
        )
        beds = await post(client, notice(roles, group=SHELTER, expires_at=at(now + timedelta(hours=12))))
        assert [n["notice_id"] for n in await inbox(client, person)] == [soon, standing]
        assert [n["notice_id"] for n in await kiosk(client, dave, "4321")] == [beds]

        # Time passes, as far as the stored expiries go.
        for notice_id in (soon, beds):
            await sql(
                platform_settings,
                "UPDATE notices SET expires_at = now() - interval '1 second' WHERE notice_id = $1",
                notice_id,
            )
        assert [n["notice_id"] for n in await inbox(client, person)] == [standing]
        assert await kiosk(client, dave, "4321") == []


async def test_bad_notices_are_422_problems_and_the_signature_covers_group_and_expiry(
    platform_settings: PlatformSettings,
):
    async with identity_service(platform_settings) as (client, roles):
        person = Keypair.generate()
        await register(client, person)
        now = datetime.now(UTC)
        bad = {
            "both": notice(roles, recipient=person.did, group=SHELTER),
            "neither": notice(roles),
            "both null": notice(roles, recipient=None, group=None),
            "unknown group kind": notice(roles, group={"everyone": True}),
            "two group kinds": notice(roles, group={**SHELTER, "credential": RESIDENT}),
            "self custody": notice(roles, group={"custody": "self"}),
            "group not an object": notice(roles, group="custodial"),
            "empty credential type": notice(roles, group={"credential": ""}),
            "impossible date": notice(roles, recipient=person.did, expires_at="2026-99-99T99:99:99Z"),
            "not UTC": notice(roles, recipient=person.did, expires_at="2026-12-01T08:00:00+01:00"),
            "expires before issued": notice(
                roles, group=SHELTER, expires_at=at(now - timedelta(hours=1)), issued_at=now
            ),
            "expires when issued": notice(roles, group=SHELTER, expires_at=at(now), issued_at=now),
            "expires too late": notice(roles, group=SHELTER, expires_at=at(now + timedelta(days=91))),
        }
        for case, body in bad.items():
            problem = assert_problem(await client.post("/v1/notices", json=body), 422)
            assert problem["type"].endswith("/invalid-request"), (case, problem)
        assert await sql(platform_settings, "SELECT count(*) FROM notices") == 0

        # Who and until when are signed: changing either after signing breaks the signature.
        beds = notice(roles, group=SHELTER, expires_at=at(now + timedelta(hours=3)))
        for changed in (
            {**beds, "group": {"credential": RESIDENT}},
            {**beds, "expires_at": at(now + timedelta(days=30))},
        ):
            assert assert_problem(await client.post("/v1/notices", json=changed), 400)["type"].endswith(
                "/invalid-signature"
            )
        # Not a notices-role key: refused whatever the group.
        stranger = Keypair.generate()
        spam = stranger.sign(
            {"issued_at": at(now), "sender": stranger.did, "title": "x", "body": "y", "group": SHELTER}
        )
        assert_problem(await client.post("/v1/notices", json=spam), 403)
        assert await sql(platform_settings, "SELECT count(*) FROM notices") == 0


async def test_a_notice_to_the_aid_holders_of_a_zone_reaches_those_the_ledger_says_hold_aid_there(
    platform_settings: PlatformSettings,
):
    """The group is resolved at read time against the person's signed zone and the ledger's balances of their
    AID holder key: a person of the zone without AID, or with AID in another zone, does not see it; a self-held
    person does when they name their AID holder key, and a grant to their wallet itself is not AID they hold."""
    issuer, roles = Keypair.generate(), Roles(*(Keypair.generate() for _ in range(4)))
    async with ledger(platform_settings, issuer) as chain:
        settings = identity_settings(roles.caseworker, str(chain.base_url)).model_copy(
            update={"notice_senders": [roles.notices.did]}
        )
        async with running(create_identity(platform_settings, settings)) as client:
            zoned, holders = {}, {}
            for name, zone in (("aided", "harbour"), ("unaided", "harbour"), ("elsewhere", "old-town")):
                enrolment = signed(
                    roles.caseworker, caseworker=roles.caseworker.did, action="enrol", zone=zone
                )
                enrolled = await client.post(
                    "/v1/custodial-wallets", json={"enrolment": enrolment, "pin": PIN}
                )
                assert enrolled.status_code == 201, enrolled.text
                zoned[name] = enrolled.json()["did"]
                opened = await client.post(
                    f"/v1/custodial-wallets/{zoned[name]}/aid-holder", json={"pin": PIN}
                )
                assert opened.status_code == 200, opened.text
                holders[name] = opened.json()["aid_holder"]
            self_held = Keypair.generate()
            registered = await client.post(
                "/v1/identities", json=signed(self_held, did=self_held.did, zone="harbour")
            )
            assert registered.status_code == 201, registered.text
            commands = [{"command": "fund", "pool": "aid", "currency": "AID", "amount": 5000}] + [
                {
                    "command": "grant",
                    "holder": holder,
                    "amount": 1000,
                    "categories": ["food"],
                    "expires_at": at(datetime.now(UTC) + timedelta(days=7)),
                }
                for holder in (
                    holders["aided"],
                    holders["elsewhere"],
                    aid_holder(self_held).did,
                    zoned["unaided"],  # its wallet, not its AID holder key
                )
            ]
            for nonce, command in enumerate(commands, start=1):
                granted = await chain.post(
                    "/v1/issuer/commands", json=issuer.sign({**command, "issuer": issuer.did, "nonce": nonce})
                )
                assert granted.status_code == 201, granted.text

            harbour = await post(
                client, notice(roles, title="Food bank open late", group={"aid_zone": "harbour"})
            )
            assert [n["notice_id"] for n in await kiosk(client, zoned["aided"], PIN)] == [harbour]
            assert await kiosk(client, zoned["unaided"], PIN) == []
            assert await kiosk(client, zoned["elsewhere"], PIN) == []
            assert await inbox(client, self_held) == []
            named = await inbox(client, self_held, aid_holder=aid_holder(self_held).did)
            assert [n["group"] for n in named] == [{"aid_zone": "harbour"}]
            for bad in (
                {"aid_zone": "Harbour!"},
                {"aid_zone": ""},
                {"aid_zone": "harbour", "custody": "custodial"},
            ):
                assert_problem(await client.post("/v1/notices", json=notice(roles, group=bad)), 422)

        # Without the ledger the inbox still opens; it says which group it could not resolve.
        nowhere = identity_settings(roles.caseworker, f"http://127.0.0.1:{embedded.free_port()}")
        async with running(create_identity(platform_settings, nowhere)) as client:
            response = await client.post(f"/v1/custodial-wallets/{zoned['aided']}/notices", json={"pin": PIN})
            assert response.status_code == 200, response.text
            assert response.json() == {"notices": [], "unresolved": ["aid_zone"]}
