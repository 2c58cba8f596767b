"""PIN resets on a real PostgreSQL: a caseworker's signed order plus a re-proof of the person (the photo on record,
or their resident credential) gives a custodial wallet a new PIN, keeping its did and key; anything less is
refused with its own problem type, and the same order never resets twice."""

from __future__ import annotations

import hashlib

import asyncpg
import httpx

from services.common.settings import PlatformSettings
from services.common.signing import Keypair, b64url_decode
from tests.integration.test_identity_api import Roles, identity_dsn, identity_service, issue, signed
from tests.support.asgi import assert_problem
from tests.support.factories import reencoded

PHOTO = hashlib.sha256(b"the photo the caseworker took at enrolment").hexdigest()


async def enrol(client: httpx.AsyncClient, roles: Roles, pin: str, **fields: str) -> str:
    enrolment = signed(roles.caseworker, caseworker=roles.caseworker.did, action="enrol", **fields)
    enrolled = await client.post("/v1/custodial-wallets", json={"enrolment": enrolment, "pin": pin})
    assert enrolled.status_code == 201, enrolled.text
    return enrolled.json()["did"]


def reset_order(caseworker: Keypair, did: str, proof: dict) -> dict:
    return signed(caseworker, caseworker=caseworker.did, action="reset-pin", did=did, proof=proof)


async def reset(client: httpx.AsyncClient, did: str, order: dict, new_pin: str) -> httpx.Response:
    return await client.post(
        f"/v1/custodial-wallets/{did}/pin-reset", json={"order": order, "new_pin": new_pin}
    )


async def opens(client: httpx.AsyncClient, did: str, pin: str) -> int:
    return (await client.post(f"/v1/custodial-wallets/{did}/notices", json={"pin": pin})).status_code


async def test_a_locked_out_person_gets_a_new_pin_on_the_photo_on_record(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        person = await enrol(client, roles, "2468", photo_sha256=PHOTO)
        for wrong in ("0000", "1111", "2222"):  # three wrong PINs lock the wallet
            await opens(client, person, wrong)
        assert await opens(client, person, "2468") == 423

        # Refused: not a caseworker, another did than the path's, a photo not on record, a malformed PIN.
        outsider = Keypair.generate()
        forged = signed(
            outsider, caseworker=outsider.did, action="reset-pin", did=person, proof={"photo_sha256": PHOTO}
        )
        assert assert_problem(await reset(client, person, forged, "8642"), 403)["type"].endswith("/forbidden")
        elsewhere = reset_order(roles.caseworker, Keypair.generate().did, {"photo_sha256": PHOTO})
        assert_problem(await reset(client, person, elsewhere, "8642"), 422)
        other_photo = reset_order(roles.caseworker, person, {"photo_sha256": "0" * 64})
        mismatch = assert_problem(await reset(client, person, other_photo, "8642"), 403)
        assert mismatch["type"].endswith("/proof-mismatch")
        good = reset_order(roles.caseworker, person, {"photo_sha256": PHOTO})
        assert_problem(await reset(client, person, good, "12"), 422)
        assert await opens(client, person, "2468") == 423  # nothing of that changed the wallet

        done = await reset(client, person, good, "8642")
        assert done.status_code == 201, done.text
        assert done.json()["did"] == person and done.json()["proof"] == "photo"
        # The lock is lifted, the old PIN is gone, the new one opens the very same key.
        assert await opens(client, person, "2468") == 403
        assert await opens(client, person, "8642") == 200
        # The same order again, with another PIN, resets nothing more; its signature written another way
        # (the same 64 bytes) is no signature at all.
        repeated = await reset(client, person, good, "5555")
        assert repeated.status_code == 200 and repeated.json()["reset_at"] == done.json()["reset_at"]
        assert_problem(await reset(client, person, reencoded(good), "5555"), 400)
        assert await opens(client, person, "5555") == 403
        exported = await client.post(f"/v1/custodial-wallets/{person}/export", json={"pin": "8642"})
        assert Keypair.from_seed(b64url_decode(exported.json()["seed"])).did == person

    conn = await asyncpg.connect(identity_dsn(platform_settings))
    try:
        logged = await conn.fetch("SELECT did, caseworker, proof FROM pin_resets WHERE did = $1", person)
    finally:
        await conn.close()
    assert [tuple(row) for row in logged] == [(person, roles.caseworker.did, "photo")]


async def test_a_resident_credential_or_its_photo_proves_the_person(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        person = await enrol(client, roles, "1357")  # no photo at enrolment
        issued = await issue(client, roles, person, photo_sha256=PHOTO)
        credential = issued["sd_jwt"]

        # The photo in the credential the city keeps for the person is on record too.
        by_photo = await reset(
            client, person, reset_order(roles.caseworker, person, {"photo_sha256": PHOTO}), "2020"
        )
        assert by_photo.status_code == 201, by_photo.text
        assert await opens(client, person, "2020") == 200

        # The person's printed credential (no key binding: the key is what is being recovered).
        stranger = Keypair.generate()
        await client.post("/v1/identities", json=signed(stranger, did=stranger.did))
        theirs = (await issue(client, roles, stranger.did))["sd_jwt"]
        not_theirs = reset_order(roles.caseworker, person, {"credential": theirs})
        assert assert_problem(await reset(client, person, not_theirs, "3030"), 403)["type"].endswith(
            "/proof-mismatch"
        )
        jwt, *rest = credential.split("~")
        header, payload, sig = jwt.split(".")
        forged_sig = "~".join([".".join([header, payload, sig[::-1]]), *rest])
        tampered = reset_order(roles.caseworker, person, {"credential": forged_sig})
        assert assert_problem(await reset(client, person, tampered, "3030"), 400)["type"].endswith(
            "/presentation-signature"
        )
        shown = await reset(
            client, person, reset_order(roles.caseworker, person, {"credential": credential}), "3030"
        )
        assert shown.status_code == 201 and shown.json()["proof"] == "credential", shown.text
        assert await opens(client, person, "3030") == 200
        assert await opens(client, person, "2020") == 403

        # Once the credential is revoked it proves nothing.
        revocation = signed(
            roles.issuer,
            issuer=roles.issuer.did,
            action="revoke-credential",
            credential_id=issued["credential_id"],
        )
        revoking = await client.post(f"/v1/credentials/{issued['credential_id']}/revocation", json=revocation)
        assert revoking.status_code == 200, revoking.text
        revoked = reset_order(roles.caseworker, person, {"credential": credential})
        assert assert_problem(await reset(client, person, revoked, "4040"), 400)["type"].endswith(
            "/presentation-revoked"
        )


async def test_a_wallet_without_a_recovery_copy_cannot_be_reset(platform_settings: PlatformSettings):
    async with identity_service(platform_settings) as (client, roles):
        person = await enrol(client, roles, "2468", photo_sha256=PHOTO)
        conn = await asyncpg.connect(identity_dsn(platform_settings))
        try:
            await conn.execute("UPDATE custodial_wallets SET recovery_sealed = NULL WHERE did = $1", person)
        finally:
            await conn.close()
        order = reset_order(roles.caseworker, person, {"photo_sha256": PHOTO})
        assert assert_problem(await reset(client, person, order, "8642"), 409)["type"].endswith(
            "/no-recovery-copy"
        )
        assert await opens(client, person, "2468") == 200
        unknown = Keypair.generate().did
        order = reset_order(roles.caseworker, unknown, {"photo_sha256": PHOTO})
        assert_problem(await reset(client, unknown, order, "8642"), 404)
