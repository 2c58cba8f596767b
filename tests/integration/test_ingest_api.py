"""The ingest API on a real broker and PostgreSQL: device registrations, mixed batches of readings published
to city.readings.v1, bad bodies, and a 503 when the broker does not acknowledge."""

from __future__ import annotations

import hashlib

from prometheus_client import REGISTRY

from services.common import attestation, embedded, schemas
from services.common.events import headers_dict, now_rfc3339
from services.common.kafka import partition_of
from services.common.roles import operator_key
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.ingest.app import create_app
from services.ingest.devices import sign_registration
from services.ingest.settings import IngestSettings
from tests.support import consents
from tests.support.asgi import assert_problem, running
from tests.support.topics import end_offsets, readings_published_during

# Without a broker the consent view cannot start: don't let startup wait long for it.
UNREACHABLE = IngestSettings(consents_start_timeout_s=1)


def _registration(owner: Keypair, device: Keypair, kind: str = "noise", zone: str = "old-town") -> dict:
    body = {"device_id": device.did, "owner": owner.did, "kind": kind, "zone": zone}
    return sign_registration(owner, device, body)


def _reading(device: Keypair, seq: int, kind: str = "noise", zone: str = "old-town") -> dict:
    return device.sign(
        {
            "device_id": device.did,
            "seq": seq,
            "ts": now_rfc3339(),
            "kind": kind,
            "zone": zone,
            "values": {"db_a": 50.0 + seq} if kind == "noise" else {"pm10": 10.0 + seq},
        }
    )


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_device_registration(platform_settings: PlatformSettings):
    owner, device, other_owner = Keypair.generate(), Keypair.generate(), Keypair.generate()
    registration = _registration(owner, device)
    async with running(create_app(platform_settings)) as client:
        created = await client.post("/v1/devices", json=registration)
        assert created.status_code == 201, created.text
        assert created.json()["registration"] == registration
        assert created.json()["owner"] == owner.did

        again = await client.post("/v1/devices", json=registration)
        assert again.status_code == 200
        assert again.json() == created.json()

        # A device, its owner included, is personal: signed reads by its owner or a city operator.
        as_owner, as_other = SignedReadAuth(owner), SignedReadAuth(other_owner)
        as_operator = SignedReadAuth(operator_key(platform_settings.data_dir))
        assert (await client.get(f"/v1/devices/{device.did}", auth=as_owner)).json() == created.json()
        assert (await client.get(f"/v1/devices/{device.did}", auth=as_operator)).json() == created.json()
        anonymous = assert_problem(await client.get(f"/v1/devices/{device.did}"), 401)
        assert (
            anonymous["type"].endswith("/signature-required")
            and "Accept-Signature" in (await client.get(f"/v1/devices/{device.did}")).headers
        )
        # To anyone else it does not exist: the very answer an unknown device gets.
        hidden = assert_problem(await client.get(f"/v1/devices/{device.did}", auth=as_other), 404)
        unknown = Keypair.generate().did
        assert (
            hidden["detail"].replace(device.did, unknown)
            == (assert_problem(await client.get(f"/v1/devices/{unknown}", auth=as_other), 404)["detail"])
        )
        assert_problem(await client.get(f"/v1/devices/{device.did}/history", auth=as_other), 404)
        assert_problem(await client.get("/v1/devices/not-a-did", auth=as_owner), 400)

        taken = await client.post("/v1/devices", json=_registration(other_owner, device))
        assert "another owner" in assert_problem(taken, 409)["detail"]
        moved = await client.post("/v1/devices", json=_registration(owner, device, zone="harbour"))
        assert_problem(moved, 409)

        second = Keypair.generate()
        tampered = {**_registration(owner, second), "zone": "harbour"}
        assert_problem(await client.post("/v1/devices", json=tampered), 400)
        wrong_types = await client.post("/v1/devices", json={"device_id": 5, "owner": [], "kind": 1})
        assert_problem(wrong_types, 422)
        bad_did = sign_registration(
            owner, second, {**_registration(owner, second), "device_id": "did:key:z6Mk" + "1" * 45}
        )
        assert_problem(await client.post("/v1/devices", json=bad_did), 422)
        assert_problem(await client.post("/v1/devices", content=b'{"device_id": '), 400)
        # None of the refused ones was stored.
        assert_problem(await client.get(f"/v1/devices/{second.did}", auth=as_owner), 404)
        assert (await client.get(f"/v1/devices/{device.did}", auth=as_owner)).json()["owner"] == owner.did


async def test_a_mixed_batch_publishes_exactly_the_good_readings(platform_settings: PlatformSettings):
    owner, device, stranger = Keypair.generate(), Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    good = [_reading(device, 1), _reading(device, 2)]
    batch = [
        good[0],
        {**_reading(device, 3), "values": {"db_a": 99.0}},  # tampered after signing
        _reading(stranger, 1),  # never registered
        {**_reading(device, 4), "seq": "four"},  # wrong type
        "not a reading",
        _reading(device, 5, kind="air_quality"),  # not the registered kind
        _reading(device, 6, zone="harbour"),  # not the registered zone
        good[1],
    ]
    accepted_before = _sample("smartcity_ingest_readings_accepted_total")
    bad_sig_before = _sample("smartcity_ingest_readings_rejected_total", reason="bad_signature")
    app = create_app(platform_settings)
    async with running(app) as client:
        assert (await client.post("/v1/devices", json=_registration(owner, device))).status_code == 201
        await consents.grant(bootstrap, owner, app)
        start = await end_offsets(bootstrap, READINGS)
        response = await client.post("/v1/readings", json={"readings": batch})
        assert response.status_code == 202, response.text
        results = response.json()["results"]
        published = await readings_published_during(bootstrap, start)
        metrics = (await client.get("/metrics")).text

    assert [r["index"] for r in results] == list(range(len(batch)))
    assert [r["status"] for r in results] == ["accepted"] + ["rejected"] * 6 + ["accepted"]
    reasons = [r["reason"] for r in results]
    assert reasons[0] is None and reasons[7] is None
    assert reasons[1] == "bad_signature"
    assert reasons[2] == "unknown_device"
    assert reasons[3].startswith("invalid_reading: seq: ")
    assert reasons[4].startswith("invalid_reading: (root): ")
    assert reasons[5].startswith("kind_mismatch: ") and reasons[6].startswith("zone_mismatch: ")
    assert response.json()["accepted"] == 2 and response.json()["rejected"] == 6

    # The two good readings of one device (one owner, one partition): one batch record of two lines under
    # ingest's attestation, keyed by the owner (bound to no person), an envelope a line.
    mine = [p for p in published if p.reading["device_id"] in {device.did, stranger.did}]
    assert len(mine) == 2
    (message,) = {id(p.message): p.message for p in mine}.values()
    assert message.key() == owner.did.encode()
    assert message.partition() == partition_of(owner.did, READINGS.partitions)
    headers = headers_dict(message.headers())
    assert headers["ce_type"] == "city.readings-batch.v1"
    assert headers["ce_source"] == "smartcity/ingest"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == "application/x-ndjson"
    assert message.value() == b"\n".join(p.line for p in mine)
    assert headers["ce_id"] == mine[0].envelope["reading_id"]
    envelopes = []
    for index, published_reading in enumerate(mine):
        envelope = published_reading.envelope
        schemas.validate(READINGS, envelope)
        assert published_reading.line == attestation.encode(envelope)
        assert published_reading.attestation["index"] == index
        assert attestation.verify(published_reading.attestation, READINGS.name, published_reading.line)
        assert envelope["owner"] == owner.did
        assert envelope["registration"] == _registration(owner, device)
        envelopes.append(envelope)
    assert sorted(e["reading"]["seq"] for e in envelopes) == [1, 2]
    assert {e["reading_id"] for e in envelopes} == {
        hashlib.sha256(f"{device.did}/{seq}".encode()).hexdigest() for seq in (1, 2)
    }
    assert [e["reading"] for e in sorted(envelopes, key=lambda e: e["reading"]["seq"])] == good

    assert _sample("smartcity_ingest_readings_accepted_total") - accepted_before == 2
    assert _sample("smartcity_ingest_readings_rejected_total", reason="bad_signature") - bad_sig_before == 1
    assert "smartcity_ingest_batch_size_bucket" in metrics and "smartcity_ingest_publish_seconds" in metrics


async def test_one_reading_a_record_when_readings_per_record_is_1(platform_settings: PlatformSettings):
    owner, device = Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    app = create_app(platform_settings.model_copy(update={"readings_per_record": 1}))
    async with running(app) as client:
        assert (await client.post("/v1/devices", json=_registration(owner, device))).status_code == 201
        await consents.grant(bootstrap, owner, app)
        start = await end_offsets(bootstrap, READINGS)
        response = await client.post(
            "/v1/readings", json={"readings": [_reading(device, 1), _reading(device, 2)]}
        )
        assert response.json()["accepted"] == 2, response.text
        published = await readings_published_during(bootstrap, start)

    mine = [p for p in published if p.reading["device_id"] == device.did]
    assert [p.reading["seq"] for p in mine] == [1, 2]
    for published_reading in mine:
        message, envelope = published_reading.message, published_reading.envelope
        assert message.value() == published_reading.line == attestation.encode(envelope)
        headers = headers_dict(message.headers())
        assert (headers["ce_type"], headers["content-type"]) == ("city.reading.v1", "application/json")
        assert headers["ce_id"] == envelope["reading_id"]
        assert message.key() == owner.did.encode()
    # One statement for the request's readings, each record with its own path.
    statements = [attestation.statement_of(p.attestation) for p in mine]
    assert statements[0] == statements[1] and statements[0]["size"] == 2


async def test_bodies_that_are_not_a_batch_get_a_problem(platform_settings: PlatformSettings):
    settings = IngestSettings(max_batch_size=3)
    async with running(create_app(platform_settings, settings)) as client:
        malformed = await client.post(
            "/v1/readings", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert assert_problem(malformed, 400)["type"].endswith("/malformed-json")
        assert_problem(await client.post("/v1/readings", content=b'{"readings": [NaN]}'), 400)
        for body in ([], {"readings": 5}, {"reading": []}, "readings"):
            assert_problem(await client.post("/v1/readings", json=body), 422)
        device = Keypair.generate()
        too_many = {"readings": [_reading(device, seq) for seq in range(4)]}
        assert_problem(await client.post("/v1/readings", json=too_many), 413)
        empty = await client.post("/v1/readings", json={"readings": []})
        assert empty.status_code == 202 and empty.json()["results"] == []
        assert (await client.get("/healthz")).status_code == 200
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"] == {
            "database": True,
            "broker": True,
            "consents": True,
            "bindings": True,
            "decisions": True,
        }


async def test_broker_unreachable_gives_503_and_accepts_nothing(platform_settings: PlatformSettings):
    unreachable = platform_settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{embedded.free_port()}", "kafka_send_timeout_s": 1.0}
    )
    owner, device = Keypair.generate(), Keypair.generate()
    accepted_before = _sample("smartcity_ingest_readings_accepted_total")
    async with running(create_app(unreachable, UNREACHABLE)) as client:
        assert (await client.post("/v1/devices", json=_registration(owner, device))).status_code == 201
        response = await client.post("/v1/readings", json={"readings": [_reading(device, 1)]})
        problem = assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0
        assert "results" not in problem
        # A batch with nothing to publish needs no broker: its rejections are still answered.
        rejected = await client.post("/v1/readings", json={"readings": [_reading(Keypair.generate(), 1)]})
        assert rejected.status_code == 202 and rejected.json()["results"][0]["reason"] == "unknown_device"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"] is False and ready.json()["checks"]["consents"] is False
    assert _sample("smartcity_ingest_readings_accepted_total") == accepted_before
