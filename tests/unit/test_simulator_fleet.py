from datetime import UTC, datetime

from services.common import schemas, signing
from services.simulator.fleet import KINDS, Fleet


def test_fleet_is_deterministic_per_seed():
    a = Fleet.generate("s", wallets=3, devices=12)
    b = Fleet.generate("s", wallets=3, devices=12)
    c = Fleet.generate("other", wallets=3, devices=12)
    assert [d.device_id for d in a.devices] == [d.device_id for d in b.devices]
    assert {d.device_id for d in a.devices}.isdisjoint(d.device_id for d in c.devices)
    assert len({d.owner.did for d in a.devices}) == 3
    assert {d.kind for d in a.devices} == set(KINDS)


def test_registrations_and_readings_are_signed_and_fit_the_schema():
    fleet = Fleet.generate("s", wallets=2, devices=len(KINDS), first_seq=1000)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    for device in fleet.devices:
        registration = device.registration()
        signing.verify(registration, "owner")
        schemas.validate_definition("device_registration", registration)
        first, second = device.next_reading(now), device.next_reading(now)
        for reading in (first, second):
            signing.verify(reading, "device_id")
            schemas.validate_definition("reading", reading)
        assert (first["seq"], second["seq"]) == (1001, 1002)
        assert first["ts"] == "2026-11-21T12:00:00.000Z"
