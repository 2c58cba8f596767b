"""The ingest service's records: reading ids, envelopes and CloudEvents headers."""

import json
from datetime import UTC, datetime

from services.common import attestation, ids, schemas
from services.common.events import NDJSON, headers_dict
from services.common.kafka import partition_of
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.ingest import readings
from services.ingest.devices import Device

SEED = bytes(range(32))


def _device(device: Keypair, owner: Keypair) -> Device:
    registration = owner.sign({"device_id": device.did, "owner": owner.did, "kind": "noise", "zone": "z1"})
    return Device(device.did, owner.did, "noise", "z1", registration, datetime(2026, 11, 21, tzinfo=UTC))


def _reading(device: Keypair, seq: int = 7) -> dict:
    return device.sign(
        {
            "device_id": device.did,
            "seq": seq,
            "ts": "2026-11-21T10:00:00.000Z",
            "kind": "noise",
            "zone": "z1",
            "values": {"db_a": 55.5},
        }
    )


def test_envelope_fits_the_topic_schema_and_carries_the_signed_registration():
    device, owner = Keypair.from_seed(SEED), Keypair.generate()
    registered = _device(device, owner)
    reading = _reading(device)
    envelope = readings.envelope(reading, registered, "2026-11-21T10:00:01.000Z")
    schemas.validate(READINGS, envelope)
    assert envelope["reading_id"] == ids.reading_id(device.did, 7)
    assert envelope["owner"] == owner.did
    assert envelope["reading"] == reading
    assert envelope["registration"] == registered.registration
    assert envelope["received_at"] == "2026-11-21T10:00:01.000Z"


def test_record_is_keyed_by_the_owners_person_else_the_owner_with_cloudevent_headers():
    device, owner = Keypair.generate(), Keypair.generate()
    bound = readings.envelope(_reading(device), _device(device, owner), "2026-11-21T10:00:01.000Z", "ab" * 32)
    assert readings.outgoing_record(bound).key == "ab" * 32  # a person's wallets decide in one partition
    envelope = readings.envelope(_reading(device), _device(device, owner), "2026-11-21T10:00:01.000Z")
    record = readings.outgoing_record(envelope)
    assert record.topic is READINGS
    assert record.key == owner.did
    assert record.value == envelope
    headers = headers_dict(record.headers)
    assert headers == {
        "ce_specversion": "1.0",
        "ce_id": envelope["reading_id"],
        "ce_type": "city.reading.v1",
        "ce_source": "smartcity/ingest",
        "ce_time": "2026-11-21T10:00:01.000Z",
        "content-type": "application/json",
    }


def test_batch_records_group_a_partitions_envelopes_in_order_under_one_attestation_each():
    attestor = Keypair.generate()
    owners = [Keypair.generate() for _ in range(6)]
    envelopes = []
    for n in range(40):
        device, owner = Keypair.generate(), owners[n % len(owners)]
        envelopes.append(
            readings.envelope(
                _reading(device, seq=n + 1), _device(device, owner), f"2026-11-21T10:00:{n:02d}.000Z"
            )
        )
    records = readings.batch_records(attestor, envelopes, per_record=4)

    seen = []
    for record in records:
        lines = attestation.verify_record(
            dict(record.headers)[attestation.HEADER], READINGS.name, record.value
        )
        values = [json.loads(line) for line, _ in lines]
        assert [line for line, _ in lines] == [attestation.encode(v) for v in values]  # JCS, one a line
        assert 1 <= len(values) <= 4
        assert {partition_of(readings.partition_key(v), READINGS.partitions) for v in values} == {
            record.partition
        }
        assert record.key == readings.partition_key(values[0])
        headers = headers_dict(record.headers)
        assert headers["ce_id"] == values[0]["reading_id"]
        if len(values) > 1:
            assert headers["ce_type"] == readings.BATCH_EVENT_TYPE
            assert headers["content-type"] == NDJSON
        seen.extend(values)
    assert sorted(seen, key=envelopes.index) == envelopes  # every envelope once
    for partition in {r.partition for r in records}:  # and in order within a partition
        mine = [v for r in records if r.partition == partition for v in map(json.loads, r.value.split(b"\n"))]
        assert mine == sorted(mine, key=envelopes.index)
    assert len(records) < len(envelopes) / 2


def test_partition_of_is_kafkas_default_partitioner():
    # Reference values of the Java client's murmur2 partitioner (Kafka's DefaultPartitionerTest and
    # librdkafka's murmur2 test vectors), over 12 partitions.
    assert partition_of("", 12) == (0x106E08D9 & 0x7FFFFFFF) % 12
    assert partition_of("kafka", 12) == (0xD067CF64 & 0x7FFFFFFF) % 12
