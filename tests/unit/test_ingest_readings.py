"""The ingest service's records: reading ids, envelopes and CloudEvents headers."""

from datetime import UTC, datetime

from services.common import ids, schemas
from services.common.events import headers_dict
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
