"""City devices and their receipts through the ingest API on a real broker and PostgreSQL, tested as an attacker
would: only an operator registers a city device; a receipt signed by an unregistered key, by a city device of
another kind, by a citizen's own device, replayed from another reading, re-encoded, or of a revoked city
device is refused with its reason and counted, while the good attested reading beside them is published with
its receipt (ingest's attestation covers it), and bad input is a 4xx, never a 500."""

from __future__ import annotations

from datetime import UTC, datetime

from services.common import kinds
from services.common.roles import operator_key
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.ingest.app import create_app
from services.ingest.checks import Reason
from services.ingest.settings import IngestSettings
from services.simulator.fleet import Fleet
from services.simulator.run import register
from tests.support import consents, ingest
from tests.support.asgi import assert_problem, running
from tests.support.factories import receipted, reencoded
from tests.support.topics import end_offsets, readings_published_during

DROPOFF = "recycling_dropoff"


def dropoff(device: Keypair, seq: int, glass: float = 2.5) -> dict:
    """A citizen's recycling drop-off, signed by its device alone."""
    return ingest.reading(device, seq, kind=DROPOFF, values={"glass": glass})


async def test_only_an_operator_registers_a_city_device(platform_settings: PlatformSettings):
    operator, citizen, station, other = (Keypair.generate() for _ in range(4))
    app = create_app(platform_settings, IngestSettings(operators=[operator.did]))
    async with running(app) as client:
        posing = ingest.city_registration(citizen, station, "recycling_station", DROPOFF)
        problem = assert_problem(await client.post("/v1/devices", json=posing), 403)
        assert problem["type"].endswith("operator-required") and "operator" in problem["detail"]
        assert_problem(await client.get(f"/v1/devices/{station.did}", auth=SignedReadAuth(operator)), 404)
        unknown_class = ingest.city_registration(operator, other, "lamp_post", DROPOFF)
        assert "class" in assert_problem(await client.post("/v1/devices", json=unknown_class), 422)["detail"]

        registration = ingest.city_registration(operator, station, "recycling_station", DROPOFF)
        created = await client.post("/v1/devices", json=registration)
        assert created.status_code == 201, created.text
        assert created.json()["registration"]["class"] == "recycling_station"
        assert (await client.post("/v1/devices", json=registration)).status_code == 200  # a harmless repeat


async def test_forged_and_misplaced_receipts_are_refused_beside_the_good_attested_reading(
    platform_settings: PlatformSettings,
):
    operator, owner, neighbour = Keypair.generate(), Keypair.generate(), Keypair.generate()
    citizen, their_device, stranger = Keypair.generate(), Keypair.generate(), Keypair.generate()
    station, gate, retired = Keypair.generate(), Keypair.generate(), Keypair.generate()
    attested = receipted(citizen, station, "recycling_station", dropoff(citizen, 1))
    batch = {
        "attested": attested,
        Reason.UNKNOWN_ATTESTER: receipted(citizen, stranger, "recycling_station", dropoff(citizen, 2)),
        Reason.ATTESTER_MISMATCH: receipted(citizen, gate, "transit_gate", dropoff(citizen, 3)),
        Reason.SELF_ATTESTED: receipted(citizen, citizen, "recycling_station", dropoff(citizen, 4)),
        Reason.NOT_CITY_DEVICE: receipted(citizen, their_device, "recycling_station", dropoff(citizen, 5)),
        Reason.RECEIPT_MISMATCH: citizen.sign({**dropoff(citizen, 6), "receipt": attested["receipt"]}),
        Reason.BAD_RECEIPT_SIGNATURE: citizen.sign(
            {
                **dropoff(citizen, 7),
                "receipt": reencoded(
                    receipted(citizen, station, "recycling_station", dropoff(citizen, 7))["receipt"]
                ),
            }
        ),
        Reason.REVOKED_ATTESTER: receipted(citizen, retired, "recycling_station", dropoff(citizen, 8)),
        Reason.INVALID_READING: citizen.sign(
            {**dropoff(citizen, 9), "receipt": {"city_device": [], "sig": 5}}
        ),
        # Citizen-only data is still data: accepted, and the policy decides it earns nothing (unattested).
        "citizen only": dropoff(citizen, 10),
    }
    reasons = [reason for reason in batch if isinstance(reason, Reason)]
    before = {reason: ingest.rejected(reason) for reason in reasons}
    app = create_app(platform_settings, IngestSettings(operators=[operator.did]))
    async with running(app) as client:
        for registration in (
            ingest.city_registration(operator, station, "recycling_station", DROPOFF),
            ingest.city_registration(operator, gate, "transit_gate", "transit_checkin"),
            ingest.city_registration(operator, retired, "recycling_station", DROPOFF),
            ingest.registration(owner, citizen, kind=DROPOFF),
            ingest.registration(neighbour, their_device, kind=DROPOFF),
        ):
            assert (await client.post("/v1/devices", json=registration)).status_code == 201
        revoked = await client.post(
            f"/v1/devices/{retired.did}/revocation", json=ingest.revocation(retired, operator)
        )
        assert revoked.status_code == 200, revoked.text
        await consents.grant(
            platform_settings.bootstrap_servers, owner, app, categories=[kinds.category(DROPOFF)]
        )
        start = await end_offsets(platform_settings.bootstrap_servers, READINGS)
        response = await client.post("/v1/readings", json={"readings": list(batch.values())})
        assert response.status_code == 202, response.text
        counted = {reason: ingest.rejected(reason) - before[reason] for reason in reasons}
        published = await readings_published_during(platform_settings.bootstrap_servers, start)

        # Bad input is answered, never a 500: a receipt of the wrong type, a device id that is no string.
        odd = await client.post(
            "/v1/readings",
            json={"readings": [{**dropoff(citizen, 11), "receipt": "yes"}, {"device_id": [], "receipt": []}]},
        )
        assert odd.status_code == 202, odd.text
        assert [r["reason"].split(":")[0] for r in odd.json()["results"]] == ["invalid_reading"] * 2

    results = dict(zip(batch, response.json()["results"], strict=True))
    assert results["attested"]["status"] == results["citizen only"]["status"] == "accepted"
    for reason in reasons:
        assert results[reason]["reason"].split(":")[0] == reason.value, (reason, results[reason])
        assert counted[reason] == 1, reason
    assert "transit_checkin" in results[Reason.ATTESTER_MISMATCH]["reason"]
    assert results[Reason.INVALID_READING]["reason"].startswith("invalid_reading: receipt")
    mine = [p.reading for p in published if p.reading["device_id"] == citizen.did]
    assert sorted(mine, key=lambda r: r["seq"]) == [attested, batch["citizen only"]]


async def test_the_simulators_city_devices_register_with_the_development_operator_key(
    platform_settings: PlatformSettings,
):
    # No INGEST_OPERATORS: ingest trusts the data dir's operator key, the one the simulator signs with.
    fleet = Fleet.generate(
        "receipts", wallets=2, devices=22, operator=operator_key(platform_settings.data_dir)
    )
    app = create_app(platform_settings)
    async with running(app) as client:
        await register(client, fleet)
        for wallet in fleet.wallets:
            categories = sorted({kinds.category(d.kind) for d in fleet.devices if d.owner == wallet})
            await consents.grant(platform_settings.bootstrap_servers, wallet, app, categories=categories)
        now = datetime.now(UTC)
        batch = [device.next_reading(now) for device in fleet.devices]
        response = await client.post("/v1/readings", json={"readings": batch})
    assert response.status_code == 202, response.text
    assert [r["reason"] for r in response.json()["results"]] == [None] * len(batch)
    assert (
        sum("receipt" in reading for reading in batch)
        == sum(d.attester is not None for d in fleet.devices)
        > 0
    )
