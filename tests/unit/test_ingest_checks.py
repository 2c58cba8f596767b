"""The checks a reading must pass: shape (naming the field), size, time, values of its kind, signature,
registration, sequence."""

from datetime import UTC, datetime

import pytest

from services.common.signing import Keypair
from services.ingest import checks, devices
from services.ingest.checks import DeviceState, Limits, Reason, Rejection
from services.ingest.devices import Device

DEVICE, OWNER = Keypair.generate(), Keypair.generate()
REGISTERED = Device(
    DEVICE.did,
    OWNER.did,
    "noise",
    "z1",
    devices.sign_registration(
        OWNER, DEVICE, {"device_id": DEVICE.did, "owner": OWNER.did, "kind": "noise", "zone": "z1"}
    ),
    datetime(2026, 11, 21, tzinfo=UTC),
)
TS = "2026-11-21T10:00:00.000Z"
NOW = datetime(2026, 11, 21, 10, 0, 30, tzinfo=UTC).timestamp()
LIMITS = Limits(max_reading_bytes=1024, max_ahead_s=60, max_age_s=3600)


def _reading(key: Keypair = DEVICE, **overrides) -> dict:
    body = {"device_id": key.did, "seq": 1, "ts": TS, "kind": "noise", "zone": "z1", "values": {"db_a": 55.5}}
    body.update(overrides)
    return key.sign(body)


def _check(reading) -> Rejection | None:
    return checks.check_reading(reading, NOW, LIMITS)


def test_a_good_reading_passes_every_check():
    reading = _reading()
    assert _check(reading) is None
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
        ({**_reading(), "ts": "2026-13-21T10:00:00Z"}, "ts"),
        ({**_reading(), "values": {"db_a": "loud"}}, "values/db_a"),
        ({**_reading(), "values": {}}, "values"),
        ({**_reading(), "kind": "Noise!"}, "kind"),
        ({**_reading(), "device_id": "did:web:example.com"}, "device_id"),
        ({**_reading(), "sig": "short"}, "sig"),
    ],
)
def test_a_malformed_reading_is_rejected_naming_the_field(reading, field):
    rejection = _check(reading)
    assert rejection is not None and rejection.reason is Reason.INVALID_READING
    assert rejection.detail.startswith(f"{field}: "), rejection.detail
    assert str(rejection).startswith(f"invalid_reading: {field}: ")


def test_a_missing_field_is_named():
    reading = _reading()
    del reading["zone"]
    rejection = _check(reading)
    assert rejection.reason is Reason.INVALID_READING and "'zone' is a required property" in rejection.detail


def test_seq_written_as_a_float_is_rejected_so_a_replay_cannot_get_a_new_id():
    # 1.0 verifies against the signature over seq 1 (JCS writes it as 1), but '<device>/1.0' is another id.
    replay = {**_reading(), "seq": 1.0}
    assert _check(replay) == Rejection(
        Reason.INVALID_READING, "seq: 1.0 must be written as an integer (no fraction or exponent)"
    )


@pytest.mark.parametrize(
    ("overrides", "reason", "detail"),
    [
        ({"values": {"db_a": -3}}, Reason.INVALID_VALUES, "values/db_a: -3 is less than the minimum of 0"),
        ({"values": {"db_a": 50, "pm10": 3}}, Reason.INVALID_VALUES, "values: Additional properties"),
        ({"values": {"decibels": 50}}, Reason.INVALID_VALUES, "values: 'db_a' is a required property"),
        ({"kind": "weather"}, Reason.UNKNOWN_KIND, "kind: 'weather' is not in the registry"),
    ],
)
def test_values_that_do_not_fit_the_kind_are_rejected_naming_the_field(overrides, reason, detail):
    rejection = _check(_reading(**overrides))
    assert rejection.reason is reason and rejection.detail.startswith(detail), rejection


def test_a_reading_larger_than_the_limit_is_rejected():
    big = _reading(kind="recycling_dropoff", values={"glass": 1.0})
    assert _check(big) is None
    assert checks.check_reading(big, NOW, Limits(max_reading_bytes=200)).reason is Reason.TOO_LARGE


@pytest.mark.parametrize(
    ("ts", "ok"),
    [
        ("2026-11-21T10:01:30Z", True),  # 60 s ahead: the edge of the window
        ("2026-11-21T10:01:31Z", False),
        ("2026-11-21T09:00:31Z", True),  # 3600 s old
        ("2026-11-21T09:00:29Z", False),
    ],
)
def test_the_timestamp_must_fall_in_the_skew_window(ts, ok):
    rejection = _check(_reading(ts=ts))
    assert (rejection is None) if ok else (rejection.reason is Reason.CLOCK_SKEW), rejection


def test_a_tampered_or_foreign_signature_is_rejected():
    assert _check({**_reading(), "values": {"db_a": 99.0}}) == Rejection(Reason.BAD_SIGNATURE)
    signed_by_another = {**Keypair.generate().sign({**_reading(), "sig": None}), "device_id": DEVICE.did}
    assert _check(signed_by_another) == Rejection(Reason.BAD_SIGNATURE)
    assert str(Rejection(Reason.BAD_SIGNATURE)) == "bad_signature"


def test_an_unregistered_device_is_unknown():
    assert checks.check_device(_reading(), None) == Rejection(Reason.UNKNOWN_DEVICE)


def test_kind_or_zone_other_than_registered_is_a_mismatch():
    other_kind = _reading(kind="air_quality", values={"pm10": 3})
    assert _check(other_kind) is None
    assert checks.check_device(other_kind, REGISTERED).reason is Reason.KIND_MISMATCH
    assert checks.check_device(_reading(zone="z2"), REGISTERED).reason is Reason.ZONE_MISMATCH


def test_batch_checks_keep_order():
    batch = [_reading(), 5, {**_reading(), "seq": 2}, _reading(seq=3)]
    reasons = [r and r.reason for r in checks.check_readings(batch, NOW, LIMITS)]
    assert reasons == [None, Reason.INVALID_READING, Reason.BAD_SIGNATURE, None]


def test_sequences_must_rise_above_the_published_and_within_the_batch():
    other, revoked = Keypair.generate(), Keypair.generate()
    states = {
        DEVICE.did: DeviceState(5, False),
        other.did: DeviceState(-1, False),
        revoked.did: DeviceState(0, True),
    }
    batch = [
        _reading(seq=5),  # published before: a retry
        _reading(seq=7),
        _reading(seq=6),  # below 7, accepted earlier in this batch
        _reading(seq=7),  # the same reading twice in one batch
        _reading(other, seq=0),
        _reading(revoked, seq=9),
        _reading(Keypair.generate(), seq=1),  # no state at all
        _reading(seq=8),
    ]
    rejections, highest = checks.check_sequences(enumerate(batch), states)
    assert {i: r.reason for i, r in rejections.items()} == {
        0: Reason.DUPLICATE,
        2: Reason.DUPLICATE,
        3: Reason.DUPLICATE,
        5: Reason.REVOKED_DEVICE,
        6: Reason.UNKNOWN_DEVICE,
    }
    assert str(rejections[0]) == "duplicate: seq 5 <= 5, already published"
    assert highest == {DEVICE.did: 8, other.did: 0}


def test_claimed_device_ids_are_the_well_formed_ones():
    other = Keypair.generate()
    batch = [_reading(), _reading(seq=2), _reading(other), 5, {"device_id": "x\u0000y"}, {"device_id": 3}]
    assert checks.claimed_device_ids(batch) == {DEVICE.did, other.did}
