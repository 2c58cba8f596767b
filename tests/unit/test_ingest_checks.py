"""The checks a reading must pass: shape (naming the field), signature, registration."""

from datetime import UTC, datetime

import pytest

from services.common.signing import Keypair
from services.ingest import checks
from services.ingest.checks import Reason, Rejection
from services.ingest.devices import Device

DEVICE, OWNER = Keypair.generate(), Keypair.generate()
REGISTERED = Device(
    DEVICE.did,
    OWNER.did,
    "noise",
    "z1",
    OWNER.sign({"device_id": DEVICE.did, "owner": OWNER.did, "kind": "noise", "zone": "z1"}),
    datetime(2026, 11, 21, tzinfo=UTC),
)


def _reading(key: Keypair = DEVICE, **overrides) -> dict:
    body = {
        "device_id": key.did,
        "seq": 1,
        "ts": "2026-11-21T10:00:00.000Z",
        "kind": "noise",
        "zone": "z1",
        "values": {"db_a": 55.5, "peak": 70},
    }
    body.update(overrides)
    return key.sign(body)


def test_a_good_reading_passes_every_check():
    reading = _reading()
    assert checks.check_reading(reading) is None
    assert checks.check_device(reading, REGISTERED) is None


@pytest.mark.parametrize(
    ("reading", "field"),
    [
        (5, "(root)"),
        ("a reading", "(root)"),
        ({**_reading(), "seq": "1"}, "seq"),
        ({**_reading(), "seq": -1}, "seq"),
        ({**_reading(), "ts": "yesterday"}, "ts"),
        ({**_reading(), "ts": "2026-11-21T10:00:00+02:00"}, "ts"),
        ({**_reading(), "values": {"db_a": "loud"}}, "values/db_a"),
        ({**_reading(), "values": {}}, "values"),
        ({**_reading(), "kind": "Noise!"}, "kind"),
        ({**_reading(), "device_id": "did:web:example.com"}, "device_id"),
        ({**_reading(), "sig": "short"}, "sig"),
    ],
)
def test_a_malformed_reading_is_rejected_naming_the_field(reading, field):
    rejection = checks.check_reading(reading)
    assert rejection is not None and rejection.reason is Reason.INVALID_READING
    assert rejection.detail.startswith(f"{field}: "), rejection.detail
    assert str(rejection).startswith(f"invalid_reading: {field}: ")


def test_a_missing_field_is_named():
    reading = _reading()
    del reading["zone"]
    rejection = checks.check_reading(reading)
    assert rejection.reason is Reason.INVALID_READING and "'zone' is a required property" in rejection.detail


def test_seq_written_as_a_float_is_rejected_so_a_replay_cannot_get_a_new_id():
    # 1.0 verifies against the signature over seq 1 (JCS writes it as 1), but '<device>/1.0' is another id.
    replay = {**_reading(), "seq": 1.0}
    assert checks.check_reading(replay) == Rejection(
        Reason.INVALID_READING, "seq: must be written as an integer"
    )


def test_a_tampered_or_foreign_signature_is_rejected():
    assert checks.check_reading({**_reading(), "values": {"db_a": 99.0}}) == Rejection(Reason.BAD_SIGNATURE)
    signed_by_another = {**Keypair.generate().sign({**_reading(), "sig": None}), "device_id": DEVICE.did}
    assert checks.check_reading(signed_by_another) == Rejection(Reason.BAD_SIGNATURE)
    assert str(Rejection(Reason.BAD_SIGNATURE)) == "bad_signature"


def test_an_unregistered_device_is_unknown():
    assert checks.check_device(_reading(), None) == Rejection(Reason.UNKNOWN_DEVICE)


@pytest.mark.parametrize("overrides", [{"kind": "air_quality"}, {"zone": "z2"}])
def test_kind_or_zone_other_than_registered_is_a_mismatch(overrides):
    reading = _reading(**overrides)
    assert checks.check_reading(reading) is None
    assert checks.check_device(reading, REGISTERED) == Rejection(Reason.KIND_MISMATCH)


def test_batch_checks_keep_order():
    batch = [_reading(), 5, {**_reading(), "seq": 2}, _reading(seq=3)]
    reasons = [r and r.reason for r in checks.check_readings(batch)]
    assert reasons == [None, Reason.INVALID_READING, Reason.BAD_SIGNATURE, None]


def test_claimed_device_ids_are_the_well_formed_ones():
    other = Keypair.generate()
    batch = [_reading(), _reading(seq=2), _reading(other), 5, {"device_id": "x\u0000y"}, {"device_id": 3}]
    assert checks.claimed_device_ids(batch) == {DEVICE.did, other.did}
