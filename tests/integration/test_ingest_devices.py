"""The device lifecycle through the API on a real PostgreSQL: registration proven by the device, listing,
revocation by the owner or a city operator, and key rotation that keeps the device's history."""

from __future__ import annotations

from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.ingest.app import create_app
from services.ingest.settings import IngestSettings
from tests.support import consents, ingest
from tests.support.asgi import assert_problem, running


async def test_registration_needs_the_devices_proof(platform_settings: PlatformSettings):
    owner, device, thief = Keypair.generate(), Keypair.generate(), Keypair.generate()
    body = {"device_id": device.did, "owner": owner.did, "kind": "noise", "zone": "old-town"}
    async with running(create_app(platform_settings)) as client:
        unproven = owner.sign(body)
        assert "device_sig" in assert_problem(await client.post("/v1/devices", json=unproven), 422)["detail"]
        forged = owner.sign(thief.sign(body, field="device_sig", exclude=("sig",)))
        assert "device" in assert_problem(await client.post("/v1/devices", json=forged), 400)["detail"]
        unknown_kind = ingest.registration(owner, device, kind="weather")
        assert "kind" in assert_problem(await client.post("/v1/devices", json=unknown_kind), 422)["detail"]
        assert_problem(await client.get(f"/v1/devices/{device.did}", auth=SignedReadAuth(owner)), 404)

        located = ingest.registration(owner, device, location={"lat": 52.37, "lon": 4.9})
        created = await client.post("/v1/devices", json=located)
        assert created.status_code == 201, created.text
        assert created.json()["location"] == {"lat": 52.37, "lon": 4.9}
        assert created.json()["registration"] == located and created.json()["status"] == "active"


async def test_listing_revoking_and_reading_after_revocation(platform_settings: PlatformSettings):
    owner, other_owner, operator, stranger = (Keypair.generate() for _ in range(4))
    mine, theirs = [Keypair.generate() for _ in range(3)], Keypair.generate()
    settings = IngestSettings(operators=[operator.did])
    app = create_app(platform_settings, settings)
    async with running(app) as client:
        await consents.grant(platform_settings.bootstrap_servers, owner, app)
        for device in mine:
            assert (
                await client.post("/v1/devices", json=ingest.registration(owner, device))
            ).status_code == 201
        assert (
            await client.post("/v1/devices", json=ingest.registration(other_owner, theirs))
        ).status_code == 201
        as_owner, as_operator = SignedReadAuth(owner), SignedReadAuth(operator)
        listed = (await client.get("/v1/devices", params={"owner": owner.did}, auth=as_owner)).json()[
            "devices"
        ]
        assert {d["device_id"] for d in listed} == {d.did for d in mine}
        # Without `owner`, a reader's own devices; another owner's only for a city operator; never anonymously.
        assert (await client.get("/v1/devices", auth=as_owner)).json()["devices"] == listed
        theirs_listed = await client.get("/v1/devices", params={"owner": other_owner.did}, auth=as_owner)
        assert assert_problem(theirs_listed, 403)["type"].endswith("/read-forbidden")
        assert_problem(await client.get("/v1/devices"), 401)
        everyone = (await client.get("/v1/devices", auth=as_operator)).json()["devices"]
        assert {d["device_id"] for d in everyone} >= {d.did for d in [*mine, theirs]}
        assert (await client.get("/v1/devices", params={"owner": owner.did}, auth=as_operator)).json()[
            "devices"
        ] == listed
        assert_problem(await client.get("/v1/devices", params={"owner": "nobody"}, auth=as_operator), 400)

        target = mine[0]
        refused = await client.post(
            f"/v1/devices/{target.did}/revocation", json=ingest.revocation(target, stranger)
        )
        assert_problem(refused, 403)
        malformed = await client.post(f"/v1/devices/{target.did}/revocation", json={"device_id": target.did})
        assert_problem(malformed, 422)
        assert_problem(
            await client.post(
                f"/v1/devices/{stranger.did}/revocation", json=ingest.revocation(stranger, stranger)
            ),
            404,
        )
        revocation = ingest.revocation(target, owner)
        revoked = await client.post(f"/v1/devices/{target.did}/revocation", json=revocation)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["status"] == "revoked" and revoked.json()["revocation"] == revocation
        # Revoking again is harmless; the first revocation stays on record.
        again = await client.post(
            f"/v1/devices/{target.did}/revocation", json=ingest.revocation(target, owner)
        )
        assert again.json()["revocation"] == revocation
        # A city operator may revoke anybody's device.
        by_operator = await client.post(
            f"/v1/devices/{theirs.did}/revocation", json=ingest.revocation(theirs, operator)
        )
        assert by_operator.status_code == 200

        listed = (await client.get("/v1/devices", auth=as_owner)).json()["devices"]
        assert {d["device_id"] for d in listed} == {d.did for d in mine[1:]}
        everything = await client.get("/v1/devices", params={"include_revoked": "true"}, auth=as_owner)
        assert len(everything.json()["devices"]) == 3

        response = await client.post(
            "/v1/readings", json={"readings": [ingest.reading(target, 1), ingest.reading(mine[1], 1)]}
        )
        assert [r["reason"] for r in response.json()["results"]] == ["revoked_device", None]


async def test_key_rotation_keeps_the_history(platform_settings: PlatformSettings):
    owner, old, new, newer, stranger = (Keypair.generate() for _ in range(5))
    app = create_app(platform_settings)
    async with running(app) as client:
        await consents.grant(platform_settings.bootstrap_servers, owner, app)
        assert (await client.post("/v1/devices", json=ingest.registration(owner, old))).status_code == 201
        assert (
            await client.post("/v1/readings", json={"readings": [ingest.reading(old, 41)]})
        ).status_code == 202

        # Only the owner's own active device can be replaced; a refused rotation stores nothing.
        hijack = ingest.registration(stranger, new, replaces=old.did)
        assert_problem(await client.post("/v1/devices", json=hijack), 409)
        as_owner = SignedReadAuth(owner)
        assert_problem(await client.get(f"/v1/devices/{new.did}", auth=as_owner), 404)

        rotated = await client.post("/v1/devices", json=ingest.registration(owner, new, replaces=old.did))
        assert rotated.status_code == 201, rotated.text
        assert rotated.json()["replaces"] == old.did
        retired = (await client.get(f"/v1/devices/{old.did}", auth=as_owner)).json()
        assert retired["status"] == "revoked" and retired["replaced_by"] == new.did

        # The retired key cannot be rotated again, nor send readings; the new key starts its own sequence.
        assert_problem(
            await client.post("/v1/devices", json=ingest.registration(owner, newer, replaces=old.did)), 409
        )
        response = await client.post(
            "/v1/readings", json={"readings": [ingest.reading(old, 42), ingest.reading(new, 1)]}
        )
        assert [r["reason"] for r in response.json()["results"]] == ["revoked_device", None]

        assert (
            await client.post("/v1/devices", json=ingest.registration(owner, newer, replaces=new.did))
        ).status_code == 201
        for device in (old, new, newer):
            history = (await client.get(f"/v1/devices/{device.did}/history", auth=as_owner)).json()["devices"]
            assert [d["device_id"] for d in history] == [old.did, new.did, newer.did]
        kinds = (await client.get("/v1/kinds")).json()["kinds"]
        assert {
            "kind": "noise",
            "title": "Noise level",
            "consent_category": "environment",
            "units": {"db_a": "dB(A)"},
        } in kinds
