"""Binding wallets to people through the identity API, on a real broker and PostgreSQL: a wallet-signed
presentation of a resident credential binds the wallet (published to city.bindings.v1), once; a credential
binds at most IDENTITY_WALLETS_PER_PERSON wallets; forged, foreign, revoked and malformed requests get their
own 4xx problem."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from services.common import events, sdjwt, signing
from services.common.bindings import AUDIENCE, binding_request, person_id
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import BINDINGS
from tests.integration.test_identity_api import identity_service, issue, register, signed
from tests.support.asgi import assert_problem
from tests.support.topics import end_offsets, records_published_during


def now() -> datetime:
    return datetime.now(UTC)


async def credential_of(client, roles, person: Keypair) -> dict:
    await register(client, person)
    return await issue(client, roles, person.did)


async def test_a_wallet_binds_once_and_a_credential_binds_at_most_n_wallets(
    platform_settings: PlatformSettings,
):
    bootstrap = platform_settings.bootstrap_servers
    async with identity_service(platform_settings, wallets_per_person=2) as (client, roles):
        alice, second, third = Keypair.generate(), Keypair.generate(), Keypair.generate()
        issued = await credential_of(client, roles, alice)
        start = await end_offsets(bootstrap, BINDINGS)

        request = binding_request(issued["sd_jwt"], alice, alice, now())
        bound = await client.post("/v1/bindings", json=request)
        assert bound.status_code == 201, bound.text
        binding = bound.json()["binding"]
        person = person_id(request["presentation"])
        assert (binding["wallet"], binding["person"]) == (alice.did, person)
        assert binding["binding"] == request
        # The same presentation again: idempotent, the binding as it was.
        again = await client.post("/v1/bindings", json=request)
        assert again.status_code == 200 and again.json()["binding"] == binding

        # Alice's second wallet: she presents her credential for it, the wallet signs; the same person.
        other = await client.post(
            "/v1/bindings", json=binding_request(issued["sd_jwt"], alice, second, now())
        )
        assert other.status_code == 201, other.text
        assert other.json()["binding"]["person"] == person
        # A third is beyond the credential's limit.
        limit = assert_problem(
            await client.post("/v1/bindings", json=binding_request(issued["sd_jwt"], alice, third, now())),
            409,
        )
        assert limit["type"].endswith("/binding-limit")

        # A wallet is bound once: Bob cannot take Alice's second wallet over, even with its key.
        bob = Keypair.generate()
        bobs = await credential_of(client, roles, bob)
        taken = await client.post("/v1/bindings", json=binding_request(bobs["sd_jwt"], bob, second, now()))
        assert assert_problem(taken, 409)["type"].endswith("/wallet-bound-elsewhere")

        published = await records_published_during(bootstrap, BINDINGS, start)
        mine = [
            json.loads(m.value()) for m in published if m.key() in (alice.did.encode(), second.did.encode())
        ]
        assert sorted(r["wallet"] for r in mine) == sorted([alice.did, second.did])  # each once
        assert all(r["person"] == person for r in mine)


async def test_forged_foreign_revoked_and_malformed_bindings_are_refused(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        alice, mallory, wallet = Keypair.generate(), Keypair.generate(), Keypair.generate()
        issued = await credential_of(client, roles, alice)
        credential = issued["sd_jwt"]

        def problem_type(response, status: int) -> str:
            return assert_problem(response, status)["type"].rsplit("/", 1)[-1]

        # A key binding made by someone else's key (Mallory got hold of the credential, not Alice's key).
        forged = binding_request(credential, mallory, wallet, now())
        refused = assert_problem(await client.post("/v1/bindings", json=forged), 422)
        assert (
            refused["type"].endswith("/invalid-presentation")
            and refused["reason"] == "presentation-key-binding"
        )
        # Alice's presentation for her own wallet, replayed in a request for another wallet.
        mine = binding_request(credential, alice, alice, now())
        replayed = wallet.sign({**{k: v for k, v in mine.items() if k != "sig"}, "wallet": wallet.did})
        refused = assert_problem(await client.post("/v1/bindings", json=replayed), 422)
        assert refused["reason"] == "presentation-wrong-nonce"
        # Presented for another audience.
        other_audience = sdjwt.present(credential, [], alice, nonce=alice.did, audience="elsewhere", iat=0)
        request = alice.sign(
            {"wallet": alice.did, "presentation": other_audience, "issued_at": events.now_rfc3339()}
        )
        assert problem_type(await client.post("/v1/bindings", json=request), 422) == "invalid-presentation"
        # Not signed by the wallet it names.
        unsigned = {**mine, "sig": mallory.sign({"x": 1})["sig"]}
        assert problem_type(await client.post("/v1/bindings", json=unsigned), 400) == "invalid-signature"
        # Presented long ago; signed long ago (around a fresh presentation).
        old = binding_request(credential, alice, alice, now() - timedelta(hours=1))
        refused = assert_problem(await client.post("/v1/bindings", json=old), 422)
        assert refused["reason"] == "presentation-stale-key-binding"
        hour_ago = events.rfc3339(now() - timedelta(hours=1))
        old = alice.sign({**{k: v for k, v in mine.items() if k != "sig"}, "issued_at": hour_ago})
        assert problem_type(await client.post("/v1/bindings", json=old), 400) == "stale-request"
        # Malformed: not an object, fields missing, not JSON at all, not an SD-JWT.
        assert problem_type(await client.post("/v1/bindings", json=[1, 2]), 422) == "invalid-binding"
        assert (
            problem_type(await client.post("/v1/bindings", json={"wallet": alice.did}), 422)
            == "invalid-binding"
        )
        garbage = await client.post(
            "/v1/bindings", content=b"{nope", headers={"content-type": "application/json"}
        )
        assert 400 <= garbage.status_code < 500 and garbage.headers["content-type"].startswith(
            "application/problem"
        )
        no_sd_jwt = alice.sign(
            {"wallet": alice.did, "presentation": "abc", "issued_at": events.now_rfc3339()}
        )
        assert problem_type(await client.post("/v1/bindings", json=no_sd_jwt), 422) == "invalid-presentation"
        # A credential of an issuer identity does not trust.
        untrusted = binding_request(
            sdjwt.issue(mallory, alice.did, {"resident_of": "x"}, vct="v", iat=0, exp=2**40),
            alice,
            alice,
            now(),
        )
        refused = assert_problem(await client.post("/v1/bindings", json=untrusted), 422)
        assert refused["reason"] == "presentation-untrusted-issuer"

        # Revoked: refused with its own type, and nothing was bound meanwhile.
        revocation = signed(
            roles.issuer,
            issuer=roles.issuer.did,
            action="revoke-credential",
            credential_id=issued["credential_id"],
        )
        revoked = await client.post(f"/v1/credentials/{issued['credential_id']}/revocation", json=revocation)
        assert revoked.status_code == 200, revoked.text
        late = binding_request(credential, alice, alice, now())
        assert problem_type(await client.post("/v1/bindings", json=late), 409) == "credential-revoked"


async def test_a_custodial_wallet_is_bound_at_a_kiosk_with_its_pin(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        enrolment = signed(roles.caseworker, caseworker=roles.caseworker.did, action="enrol")
        enrolled = await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": "2468"})
        assert enrolled.status_code == 201, enrolled.text
        person = enrolled.json()["did"]
        wallet = f"/v1/custodial-wallets/{person}/binding"
        assert assert_problem(await client.post(wallet, json={"pin": "2468"}), 404)["type"].endswith(
            "not-found"
        )
        await issue(client, roles, person)
        assert_problem(await client.post(wallet, json={"pin": "0000"}), 403)
        bound = await client.post(wallet, json={"pin": "2468"})
        assert bound.status_code == 201, bound.text
        binding = bound.json()["binding"]
        assert binding["wallet"] == person
        signing.verify(binding["binding"], "wallet")
        assert (await client.post(wallet, json={"pin": "2468"})).status_code == 200
        assert AUDIENCE == "smartcity:bindings"
