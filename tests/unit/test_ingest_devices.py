"""Device registrations: shape, did:keys, kind, the device's proof and the owner's signature, what counts as a
repeat; revocations: by the owner or a city operator only."""

from datetime import UTC, datetime

import pytest

from services.common import signing
from services.common.signing import Keypair
from services.ingest import devices
from services.ingest.devices import InvalidRegistrationError, RegistrationSignatureError

OWNER, DEVICE, OPERATOR = Keypair.generate(), Keypair.generate(), Keypair.generate()
BODY = {"device_id": DEVICE.did, "owner": OWNER.did, "kind": "noise", "zone": "z1"}


def _registration(**overrides) -> dict:
    return devices.sign_registration(OWNER, DEVICE, {**BODY, **overrides})


def _device() -> devices.Device:
    return devices.Device(
        DEVICE.did, OWNER.did, "noise", "z1", _registration(), datetime(2026, 11, 21, tzinfo=UTC)
    )


def test_a_registration_proven_by_its_device_and_signed_by_its_owner_passes():
    registration = _registration(location={"lat": 48.85, "lon": 2.35})
    devices.check_registration(registration)
    # The owner's sig is a plain signed object over everything, the device's proof included, so rewards
    # and the ledger re-verify it as they verify any signed object.
    signing.verify(registration, "owner")
    signing.verify_detached(registration, "device_id", "device_sig", exclude=("sig",))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "(root)"),
        ({**_registration(), "kind": 5}, "kind"),
        ({**_registration(), "owner": []}, "owner"),
        ({**_registration(), "device_id": "did:key:nope"}, "device_id"),
        ({k: v for k, v in _registration().items() if k != "zone"}, "(root)"),
        ({k: v for k, v in _registration().items() if k != "device_sig"}, "(root)"),
        (_registration(location={"lat": 91, "lon": 0}), "location/lat"),
        (_registration(kind="weather"), "kind"),
        (_registration(replaces=DEVICE.did), "replaces"),
    ],
)
def test_wrong_shape_is_invalid_naming_the_field(body, field):
    with pytest.raises(InvalidRegistrationError) as raised:
        devices.check_registration(body)
    assert str(raised.value).startswith(f"{field}: "), raised.value


def test_a_did_that_fits_the_pattern_but_does_not_decode_is_invalid():
    truncated = DEVICE.did[:-1]  # still base58 of plausible length, but not 0xed01 + 32 bytes
    with pytest.raises(InvalidRegistrationError, match="device_id"):
        devices.check_registration(OWNER.sign({**_registration(), "device_id": truncated}))


def test_extra_fields_are_refused():
    with pytest.raises(InvalidRegistrationError, match="unexpected field"):
        devices.check_registration(_registration(label="x" * 1000))


def test_a_registration_not_signed_by_its_owner_is_refused():
    tampered = {**_registration(), "zone": "z2"}
    with pytest.raises(RegistrationSignatureError, match="device"):  # the device's proof fails first
        devices.check_registration(tampered)
    signed_by_device = devices.sign_registration(DEVICE, DEVICE, BODY)
    with pytest.raises(RegistrationSignatureError, match="owner"):
        devices.check_registration(signed_by_device)


def test_nobody_can_bind_a_key_they_do_not_hold():
    # The owner signs a registration for someone else's device key, with a proof made by another key.
    thief = Keypair.generate()
    forged = OWNER.sign(thief.sign(BODY, field="device_sig", exclude=("sig",)))
    with pytest.raises(RegistrationSignatureError, match="not proven by its device"):
        devices.check_registration(forged)
    # Nor re-use the device's proof of another registration (to another owner).
    proof = _registration()["device_sig"]
    stolen = Keypair.generate()
    rebound = stolen.sign({**BODY, "owner": stolen.did, "device_sig": proof})
    with pytest.raises(RegistrationSignatureError, match="not proven by its device"):
        devices.check_registration(rebound)


def test_a_repeat_is_the_same_content_whatever_the_key_order():
    stored = _registration()
    assert devices.same_registration(stored, dict(reversed(list(stored.items()))))
    assert not devices.same_registration(stored, _registration(zone="z2"))


def test_device_as_json():
    device = _device()
    assert device.as_json()["registered_at"] == "2026-11-21T00:00:00.000Z"
    assert device.as_json()["registration"] == _registration()
    assert device.as_json()["status"] == "active" and device.active


def _revocation(signer: Keypair, **overrides) -> dict:
    body = {"device_id": DEVICE.did, "revoked_by": signer.did, "revoked_at": "2026-11-21T10:00:00Z"}
    return signer.sign({**body, **overrides})


@pytest.mark.parametrize("signer", [OWNER, OPERATOR])
def test_the_owner_or_an_operator_may_revoke(signer):
    devices.check_revocation(_revocation(signer), _device(), operators=[OPERATOR.did])


def test_nobody_else_may_revoke():
    with pytest.raises(RegistrationSignatureError, match="owner or a city operator"):
        devices.check_revocation(_revocation(Keypair.generate()), _device(), operators=[OPERATOR.did])
    forged = {**_revocation(Keypair.generate()), "revoked_by": OWNER.did}
    with pytest.raises(RegistrationSignatureError, match="not signed"):
        devices.check_revocation(forged, _device(), operators=[])


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ([], "an object"),
        ({"device_id": DEVICE.did}, "missing field"),
        (_revocation(OWNER, reason="lost"), "unexpected field"),
        (_revocation(OWNER, device_id=OWNER.did), "another device"),
        (_revocation(OWNER, revoked_at="now"), "revoked_at"),
    ],
)
def test_malformed_revocations_are_invalid(body, match):
    with pytest.raises(InvalidRegistrationError, match=match):
        devices.check_revocation(body, _device(), operators=[])
