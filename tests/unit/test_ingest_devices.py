"""Device registrations: shape, did:keys, the owner's signature, and what counts as a repeat."""

from datetime import UTC, datetime

import pytest

from services.common.signing import Keypair
from services.ingest import devices
from services.ingest.devices import InvalidRegistrationError, RegistrationSignatureError

OWNER, DEVICE = Keypair.generate(), Keypair.generate()


def _registration(**overrides) -> dict:
    return OWNER.sign(
        {"device_id": DEVICE.did, "owner": OWNER.did, "kind": "noise", "zone": "z1", **overrides}
    )


def test_a_registration_signed_by_its_owner_passes():
    devices.check_registration(_registration())


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "(root)"),
        ({**_registration(), "kind": 5}, "kind"),
        ({**_registration(), "owner": []}, "owner"),
        ({**_registration(), "device_id": "did:key:nope"}, "device_id"),
        ({k: v for k, v in _registration().items() if k != "zone"}, "(root)"),
    ],
)
def test_wrong_shape_is_invalid_naming_the_field(body, field):
    with pytest.raises(InvalidRegistrationError) as raised:
        devices.check_registration(body)
    assert str(raised.value).startswith(f"{field}: ")


def test_a_did_that_fits_the_pattern_but_does_not_decode_is_invalid():
    truncated = DEVICE.did[:-1]  # still base58 of plausible length, but not 0xed01 + 32 bytes
    with pytest.raises(InvalidRegistrationError, match="device_id"):
        devices.check_registration(OWNER.sign({**_registration(), "device_id": truncated}))


def test_extra_fields_are_refused():
    with pytest.raises(InvalidRegistrationError, match="unexpected field"):
        devices.check_registration(_registration(label="x" * 1000))


def test_a_registration_not_signed_by_its_owner_is_refused():
    tampered = {**_registration(), "zone": "z2"}
    with pytest.raises(RegistrationSignatureError):
        devices.check_registration(tampered)
    by_device = DEVICE.sign({"device_id": DEVICE.did, "owner": OWNER.did, "kind": "noise", "zone": "z1"})
    with pytest.raises(RegistrationSignatureError):
        devices.check_registration(by_device)


def test_a_repeat_is_the_same_content_whatever_the_key_order():
    stored = _registration()
    assert devices.same_registration(stored, dict(reversed(list(stored.items()))))
    assert not devices.same_registration(stored, _registration(zone="z2"))


def test_device_as_json():
    device = devices.Device(
        DEVICE.did, OWNER.did, "noise", "z1", _registration(), datetime(2026, 11, 21, tzinfo=UTC)
    )
    assert device.as_json()["registered_at"] == "2026-11-21T00:00:00.000Z"
    assert device.as_json()["registration"] == _registration()
