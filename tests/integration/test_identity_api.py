"""The identity API on a real broker and PostgreSQL: registration, custodial enrolment and PIN lockout,
credentials and presentations (with an independent SD-JWT verifier), revocation, notices and service records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
from jwcrypto.jwk import JWK
from nacl import pwhash
from sd_jwt.verifier import SDJWTVerifier

from services.common import db, events, sdjwt, signing
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.identity import keys, statuslist
from services.identity.app import create_app
from services.identity.settings import IdentitySettings
from tests.support.asgi import assert_problem, running
from tests.support.factories import reencoded

AUDIENCE = "https://bar.example/age-check"


@dataclass
class Roles:
    caseworker: Keypair
    issuer: Keypair
    notices: Keypair
    shelter: Keypair


@asynccontextmanager
async def identity_service(
    platform: PlatformSettings, **overrides
) -> AsyncIterator[tuple[httpx.AsyncClient, Roles]]:
    roles = Roles(Keypair.generate(), Keypair.generate(), Keypair.generate(), Keypair.generate())
    settings = IdentitySettings(
        caseworkers=[roles.caseworker.did],
        issuers=[roles.issuer.did],
        notice_senders=[roles.notices.did],
        providers=[roles.shelter.did],
        # The cheapest Argon2id the library allows keeps the tests fast; production uses the interactive cost.
        pin_opslimit=pwhash.argon2id.OPSLIMIT_MIN,
        pin_memlimit=pwhash.argon2id.MEMLIMIT_MIN,
        pin_attempts=3,
        **overrides,
    )
    async with running(create_app(platform, settings)) as client:
        yield client, roles


def identity_dsn(platform: PlatformSettings) -> str:
    """The identity database of `platform`, for tests that look at (or tamper with) its rows."""
    return db.libpq_dsn(db.service_url(platform.database_url or "", platform.database_prefix + "identity"))


def signed(key: Keypair, **fields) -> dict:
    return key.sign({"issued_at": events.now_rfc3339(), **fields})


async def register(client: httpx.AsyncClient, person: Keypair) -> None:
    response = await client.post("/v1/identities", json=signed(person, did=person.did))
    assert response.status_code in (200, 201), response.text


async def issue(client: httpx.AsyncClient, roles: Roles, subject: str, **facts) -> dict:
    facts = {"given_name": "Ada", "family_name": "Lovelace", "birthdate": "1990-05-17", **facts}
    order = signed(
        roles.issuer, issuer=roles.issuer.did, action="issue-credential", subject=subject, facts=facts
    )
    response = await client.post("/v1/credentials", json=order)
    assert response.status_code == 201, response.text
    return response.json()


async def verify(client: httpx.AsyncClient, presentation: str, nonce: str = "n-42", audience: str = AUDIENCE):
    return await client.post(
        "/v1/presentations/verify", json={"presentation": presentation, "nonce": nonce, "audience": audience}
    )


def present(credential: str, holder: Keypair, disclose: list[str], nonce: str = "n-42") -> str:
    now = int(datetime.now(UTC).timestamp())
    return sdjwt.present(credential, disclose, holder, nonce=nonce, audience=AUDIENCE, iat=now)


async def test_registration_issuance_presentations_and_revocation(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        alice = Keypair.generate()
        first = await client.post("/v1/identities", json=signed(alice, did=alice.did))
        assert first.status_code == 201 and first.json() == {"did": alice.did, "custody": "self"}
        assert (await client.post("/v1/identities", json=signed(alice, did=alice.did))).status_code == 200
        assert_problem(
            await client.post("/v1/identities", json=signed(Keypair.generate(), did=alice.did)), 400
        )
        assert (await client.get(f"/v1/identities/{alice.did}")).json()["did"] == alice.did

        # Only an issuer-role key orders credentials, and only for registered people.
        stranger = Keypair.generate()
        order = signed(
            stranger,
            issuer=stranger.did,
            action="issue-credential",
            subject=alice.did,
            facts={"given_name": "A", "family_name": "B", "birthdate": "2000-01-01"},
        )
        assert_problem(await client.post("/v1/credentials", json=order), 403)
        unknown = signed(
            roles.issuer,
            issuer=roles.issuer.did,
            action="issue-credential",
            subject=Keypair.generate().did,
            facts={"given_name": "A", "family_name": "B", "birthdate": "2000-01-01"},
        )
        assert_problem(await client.post("/v1/credentials", json=unknown), 404)

        issued = await issue(client, roles, alice.did, address="1 Canal Street")
        credential = issued["sd_jwt"]
        assert set(sdjwt.claim_names(credential)) == {
            "given_name",
            "family_name",
            "birthdate",
            "age_over_18",
            "age_over_21",
            "age_over_65",
            "resident_of",
            "address",
        }

        only_birthdate = await verify(client, present(credential, alice, ["birthdate"]))
        assert only_birthdate.status_code == 200, only_birthdate.text
        assert only_birthdate.json()["disclosed"] == {"birthdate": "1990-05-17"}
        only_over_18 = await verify(client, present(credential, alice, ["age_over_18"]))
        assert only_over_18.json()["disclosed"] == {"age_over_18": True}
        assert only_over_18.json()["vct"] == "https://smartcity.example/credentials/resident/v1"

        good = present(credential, alice, ["age_over_18"])
        reasons = {
            "wrong-nonce": await verify(client, good, nonce="other"),
            "wrong-audience": await verify(client, good, audience="https://evil.example"),
            "key-binding": await verify(client, present(credential, Keypair.generate(), ["age_over_18"])),
        }
        jwt, disclosures, kb = sdjwt.split(good)
        salt, name, _ = json.loads(signing.b64url_decode(disclosures[0]))
        forged = signing.b64url_encode(json.dumps([salt, name, False]).encode())
        reasons["tampered-disclosure"] = await verify(client, "~".join([jwt, forged, kb]))
        # The issuer's JWT re-signed by a key that is not the city's, claiming the city as issuer.
        signed_part = jwt.rpartition(".")[0]
        impostor = signing.b64url_encode(Keypair.generate().sign_bytes(signed_part.encode()))
        reasons["signature"] = await verify(client, "~".join([f"{signed_part}.{impostor}", *disclosures, kb]))
        # Credentials the service did not issue, or issued long ago.
        now = int(datetime.now(UTC).timestamp())
        city = keys.city_keypair(IdentitySettings(), platform_settings.data_dir)
        for reason, signer, exp in (
            ("expired", city, now - 3600),
            ("untrusted-issuer", Keypair.generate(), now + 60),
        ):
            old = sdjwt.issue(signer, alice.did, {"age_over_18": True}, vct="x", iat=now - 7200, exp=exp)
            reasons[reason] = await verify(client, present(old, alice, ["age_over_18"]))
        for reason, response in reasons.items():
            body = assert_problem(response, 400)
            assert body["reason"] == reason and body["type"].endswith(f"presentation-{reason}")

        # Revocation: the same presentation that verified is refused from now on.
        revocation = signed(
            roles.issuer,
            issuer=roles.issuer.did,
            action="revoke-credential",
            credential_id=issued["credential_id"],
        )
        revoked = await client.post(f"/v1/credentials/{issued['credential_id']}/revocation", json=revocation)
        assert revoked.status_code == 200, revoked.text
        assert assert_problem(await verify(client, good), 400)["reason"] == "revoked"
        status_list = (await client.get("/v1/status-lists/resident")).text
        claims = json.loads(signing.b64url_decode(status_list.split(".")[1]))
        assert statuslist.is_set(claims["status_list"], issued["status_index"])


async def test_an_independent_sd_jwt_library_verifies_our_credentials(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        bob = Keypair.generate()
        await register(client, bob)
        credential = (await issue(client, roles, bob.did))["sd_jwt"]
        issuer_did = json.loads(signing.b64url_decode(credential.split(".")[1]))["iss"]
        issuer_key = JWK(**sdjwt.public_jwk(issuer_did))

        def issuer_key_of(iss: str, header: dict) -> JWK:
            assert iss == issuer_did and header["alg"] == "EdDSA"
            return issuer_key

        # The OpenWallet Foundation's verifier checks the EdDSA issuer signature and the disclosure digests
        # (its key-binding check is ES256-only, so ours is tested above).
        presentation = present(credential, bob, ["age_over_21", "given_name"])
        claims = SDJWTVerifier(presentation, issuer_key_of).get_verified_payload()
        assert claims["age_over_21"] is True and claims["given_name"] == "Ada"
        assert "birthdate" not in claims and "family_name" not in claims
        assert claims["cnf"]["jwk"] == sdjwt.public_jwk(bob.did)
        whole = SDJWTVerifier(credential, issuer_key_of).get_verified_payload()
        assert whole["birthdate"] == "1990-05-17" and whole["resident_of"] == "Smart City"


async def test_custodial_wallet_enrolment_presentation_lockout_and_export(
    platform_settings: PlatformSettings,
):
    async with identity_service(platform_settings) as (client, roles):
        enrolment = signed(roles.caseworker, caseworker=roles.caseworker.did, action="enrol")
        not_a_caseworker = signed(roles.issuer, caseworker=roles.issuer.did, action="enrol")
        assert_problem(
            await client.post("/v1/custodial-wallets", json={"enrolment": not_a_caseworker, "pin": "2468"}),
            403,
        )
        assert_problem(
            await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": "12"}), 422
        )
        enrolled = await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": "2468"})
        assert enrolled.status_code == 201, enrolled.text
        person = enrolled.json()["did"]
        await issue(client, roles, person, birthdate="1950-02-01")  # no address: the person has none

        wallet = f"/v1/custodial-wallets/{person}"
        ask = {"disclose": ["age_over_65"], "nonce": "kiosk-7", "audience": AUDIENCE}
        made = await client.post(f"{wallet}/presentations", json={**ask, "pin": "2468"})
        assert made.status_code == 200, made.text
        checked = await verify(client, made.json()["presentation"], nonce="kiosk-7")
        assert checked.status_code == 200 and checked.json()["disclosed"] == {"age_over_65": True}
        assert_problem(
            await client.post(
                f"{wallet}/presentations", json={**ask, "disclose": ["address"], "pin": "2468"}
            ),
            422,
        )

        # Wrong PINs count, in the database: a fresh instance of the service keeps counting.
        wrong = assert_problem(await client.post(f"{wallet}/notices", json={"pin": "0000"}), 403)
        assert wrong["attempts_left"] == 2
    async with identity_service(platform_settings) as (client, _roles):
        wallet = f"/v1/custodial-wallets/{person}"
        assert (
            assert_problem(await client.post(f"{wallet}/notices", json={"pin": "1111"}), 403)["attempts_left"]
            == 1
        )
        locked = assert_problem(await client.post(f"{wallet}/notices", json={"pin": "2222"}), 423)
        assert "locked_until" in locked
        # Locked: even the right PIN is refused until the lockout ends.
        assert_problem(await client.post(f"{wallet}/notices", json={"pin": "2468"}), 423)
        assert_problem(await client.post(f"{wallet}/export", json={"pin": "2468"}), 423)


async def test_export_hands_the_key_over_and_deletes_the_city_copy(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        enrolment = signed(roles.caseworker, caseworker=roles.caseworker.did, action="enrol")
        person = (
            await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": "97531"})
        ).json()["did"]
        credential_order = await issue(client, roles, person)
        wallet = f"/v1/custodial-wallets/{person}"
        exported = await client.post(f"{wallet}/export", json={"pin": "97531"})
        assert exported.status_code == 200, exported.text
        key = Keypair.from_seed(signing.b64url_decode(exported.json()["seed"]))
        assert key.did == person
        # The person leaves with their credential too, and can present it from their own device now.
        (credential,) = exported.json()["credentials"]
        assert credential == credential_order["sd_jwt"]
        assert (await verify(client, present(credential, key, ["resident_of"]))).json()["disclosed"] == {
            "resident_of": "Smart City"
        }
        # The city holds no key any more: its PIN endpoints answer as for any did without a wallet.
        gone = assert_problem(
            await client.post(
                f"{wallet}/presentations",
                json={"pin": "97531", "disclose": [], "nonce": "n", "audience": "a"},
            ),
            403,
        )
        assert gone["type"].endswith("/wrong-pin")
        assert_problem(await client.post(f"{wallet}/export", json={"pin": "97531"}), 403)
        # The person now signs for themselves, e.g. to read their inbox.
        inbox = await client.post("/v1/notices/inbox", json=signed(key, did=person, action="read-notices"))
        assert inbox.status_code == 200 and inbox.json() == {"notices": []}


async def test_notices_reach_people_with_and_without_a_device(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        carol = Keypair.generate()
        await register(client, carol)
        enrolment = signed(roles.caseworker, caseworker=roles.caseworker.did, action="enrol")
        dave = (
            await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": "4321"})
        ).json()["did"]

        def notice(recipient: str, title: str, sender: Keypair = roles.notices) -> dict:
            return signed(
                sender,
                sender=sender.did,
                recipient=recipient,
                title=title,
                body="Tonight, 40 beds.\nDoors 19:00.",
            )

        beds = notice(carol.did, "Shelter beds tonight")
        posted = await client.post("/v1/notices", json=beds)
        assert posted.status_code == 201, posted.text
        assert (await client.post("/v1/notices", json=beds)).status_code == 200  # the same notice, once
        assert (await client.post("/v1/notices", json=notice(dave, "Aid granted"))).status_code == 201
        assert_problem(
            await client.post("/v1/notices", json=notice(carol.did, "spam", sender=Keypair.generate())), 403
        )
        assert_problem(await client.post("/v1/notices", json=notice(Keypair.generate().did, "who?")), 404)

        inbox = await client.post(
            "/v1/notices/inbox", json=signed(carol, did=carol.did, action="read-notices")
        )
        assert [n["title"] for n in inbox.json()["notices"]] == ["Shelter beds tonight"]
        assert inbox.json()["notices"][0]["notice"] == beds  # signed by the sender, re-verifiable
        someone_else = Keypair.generate()
        assert_problem(
            await client.post(
                "/v1/notices/inbox", json=signed(someone_else, did=carol.did, action="read-notices")
            ),
            400,
        )
        stale = someone_else.sign(
            {"did": someone_else.did, "action": "read-notices", "issued_at": "2020-01-01T00:00:00Z"}
        )
        assert assert_problem(await client.post("/v1/notices/inbox", json=stale), 400)["type"].endswith(
            "stale-request"
        )
        kiosk = await client.post(f"/v1/custodial-wallets/{dave}/notices", json={"pin": "4321"})
        assert [n["title"] for n in kiosk.json()["notices"]] == ["Aid granted"]


async def test_service_records_need_consent_and_are_counted_without_identities(
    platform_settings: PlatformSettings,
):
    async with identity_service(platform_settings) as (client, roles):
        erin, frank = Keypair.generate(), Keypair.generate()
        consent = signed(
            erin,
            subject=erin.did,
            category="services",
            grantee=roles.shelter.did,
            action="grant",
            purpose="shelter stays",
        )
        assert (await client.post("/v1/consents", json=consent)).status_code == 201

        def record(subject: Keypair, service: str, day: str, provider: Keypair = roles.shelter) -> dict:
            return signed(provider, provider=provider.did, subject=subject.did, service=service, day=day)

        for body in (
            record(erin, "shelter-bed", "2026-11-20"),
            record(erin, "shelter-bed", "2026-11-21"),
            record(erin, "meal", "2026-11-21"),
        ):
            response = await client.post("/v1/service-records", json=body)
            assert response.status_code == 201, response.text
        again = record(erin, "meal", "2026-11-20")
        assert (await client.post("/v1/service-records", json=again)).status_code == 201
        assert (await client.post("/v1/service-records", json=again)).status_code == 200  # not counted twice
        refused = assert_problem(
            await client.post("/v1/service-records", json=record(frank, "meal", "2026-11-21")), 403
        )
        assert refused["reason"] == "no_consent"
        assert_problem(
            await client.post(
                "/v1/service-records", json=record(erin, "meal", "2026-11-21", provider=Keypair.generate())
            ),
            403,
        )

        counts = await client.get(
            "/v1/service-records/counts", params={"since": "2026-11-20", "until": "2026-11-21"}
        )
        assert counts.status_code == 200
        assert counts.json()["counts"] == [
            {"service": "meal", "day": "2026-11-20", "count": 1},
            {"service": "shelter-bed", "day": "2026-11-20", "count": 1},
            {"service": "meal", "day": "2026-11-21", "count": 1},
            {"service": "shelter-bed", "day": "2026-11-21", "count": 1},
        ]
        assert erin.did not in counts.text


async def test_a_reencoded_signature_is_refused_and_a_resent_object_has_one_effect(
    platform_settings: PlatformSettings,
):
    async with identity_service(platform_settings) as (client, roles):
        # Enrolment: the same order twice is one wallet.
        enrolment = signed(roles.caseworker, caseworker=roles.caseworker.did, action="enrol")
        first = await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": "2468"})
        assert first.status_code == 201, first.text
        again = await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": "2468"})
        assert again.status_code == 200 and again.json()["did"] == first.json()["did"]
        assert_problem(
            await client.post(
                "/v1/custodial-wallets", json={"enrolment": reencoded(enrolment), "pin": "2468"}
            ),
            400,
        )

        # A credential order: one credential.
        person = Keypair.generate()
        await register(client, person)
        order = signed(
            roles.issuer,
            issuer=roles.issuer.did,
            action="issue-credential",
            subject=person.did,
            facts={"given_name": "Ada", "family_name": "Lovelace", "birthdate": "1990-05-17"},
        )
        issued = await client.post("/v1/credentials", json=order)
        assert issued.status_code == 201, issued.text
        assert_problem(await client.post("/v1/credentials", json=reencoded(order)), 400)
        resent = assert_problem(await client.post("/v1/credentials", json=order), 409)
        assert issued.json()["credential_id"] in resent["detail"]

        # A notice: one notice in the inbox.
        notice = signed(
            roles.notices, sender=roles.notices.did, recipient=person.did, title="Beds", body="40 tonight"
        )
        assert (await client.post("/v1/notices", json=notice)).status_code == 201
        assert_problem(await client.post("/v1/notices", json=reencoded(notice)), 400)
        inbox = await client.post(
            "/v1/notices/inbox", json=signed(person, did=person.did, action="read-notices")
        )
        assert [n["title"] for n in inbox.json()["notices"]] == ["Beds"]

        # A service record: counted once.
        consent = signed(
            person, subject=person.did, category="services", grantee=roles.shelter.did, action="grant"
        )
        assert (await client.post("/v1/consents", json=consent)).status_code == 201
        record = signed(
            roles.shelter, provider=roles.shelter.did, subject=person.did, service="meal", day="2026-11-29"
        )
        assert (await client.post("/v1/service-records", json=record)).status_code == 201
        assert_problem(await client.post("/v1/service-records", json=reencoded(record)), 400)
        counts = await client.get(
            "/v1/service-records/counts", params={"since": "2026-11-29", "until": "2026-11-29"}
        )
        assert counts.json()["counts"] == [{"service": "meal", "day": "2026-11-29", "count": 1}]


async def test_an_unknown_did_and_a_wrong_pin_get_the_same_answers_and_locks_escalate(
    platform_settings: PlatformSettings,
):
    """Outsiders cannot tell who holds a custodial wallet: a did with none is answered, counted and locked
    exactly like a wallet given wrong PINs. Each lock of a did lasts twice the one before."""
    async with identity_service(platform_settings, pin_lockout_s=1000) as (client, roles):
        enrolment = signed(roles.caseworker, caseworker=roles.caseworker.did, action="enrol")
        person = (
            await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": "2468"})
        ).json()["did"]
        nobody = Keypair.generate().did  # holds no custodial wallet

        def without_instance(problem: dict) -> dict:
            return {k: v for k, v in problem.items() if k != "instance"}

        for pin, status in (("0000", 403), ("1111", 403), ("2222", 423), ("2468", 423)):
            answers = []
            for did_value in (person, nobody):
                response = await client.post(f"/v1/custodial-wallets/{did_value}/notices", json={"pin": pin})
                problem = assert_problem(response, status)
                answers.append(
                    (without_instance({**problem, "locked_until": "-"}), response.headers.get("retry-after"))
                )
            (real, real_wait), (unknown, unknown_wait) = answers
            assert real == unknown, (pin, answers)
            # Locked one request apart, the waits may straddle a second.
            assert (real_wait is None) == (unknown_wait is None), (pin, answers)
            assert real_wait is None or abs(int(real_wait) - int(unknown_wait)) <= 1, (pin, answers)

        async def lock_ends(did_value: str) -> None:  # as if the lock had run its course
            conn = await asyncpg.connect(identity_dsn(platform_settings))
            try:
                await conn.execute(
                    "UPDATE pin_guards SET locked_until = now() - interval '1 second' WHERE did = $1",
                    did_value,
                )
            finally:
                await conn.close()

        locks = []
        for did_value in (person, nobody):
            await lock_ends(did_value)
            for pin in ("0000", "1111"):
                assert_problem(
                    await client.post(f"/v1/custodial-wallets/{did_value}/notices", json={"pin": pin}), 403
                )
            locked = assert_problem(
                await client.post(f"/v1/custodial-wallets/{did_value}/notices", json={"pin": "2222"}), 423
            )
            lasts = datetime.fromisoformat(locked["locked_until"]) - datetime.now(UTC)
            locks.append(lasts.total_seconds())
        assert all(1900 < seconds <= 2000 for seconds in locks), locks  # the second lock: twice the first

        # The right PIN, once the lock ends, opens the wallet and resets the count.
        await lock_ends(person)
        assert (
            await client.post(f"/v1/custodial-wallets/{person}/notices", json={"pin": "2468"})
        ).status_code == 200
        wrong = assert_problem(
            await client.post(f"/v1/custodial-wallets/{person}/notices", json={"pin": "0000"}), 403
        )
        assert wrong["attempts_left"] == 2
        assert_problem(
            await client.post("/v1/custodial-wallets/not-a-did/notices", json={"pin": "0000"}), 422
        )
