from datetime import UTC, datetime

from services.common import kinds, schemas, signing
from services.ingest import checks, devices
from services.simulator.fleet import KINDS, Fleet


def test_fleet_is_deterministic_per_seed():
    a = Fleet.generate("s", wallets=3, devices=22)
    b = Fleet.generate("s", wallets=3, devices=22)
    c = Fleet.generate("other", wallets=3, devices=22)
    assert [d.device_id for d in a.devices] == [d.device_id for d in b.devices]
    assert {d.device_id for d in a.devices}.isdisjoint(d.device_id for d in c.devices)
    assert len({d.owner.did for d in a.devices}) == 3
    assert {d.kind for d in a.devices} == set(KINDS)


def test_the_simulator_sends_every_kind_of_the_registry():
    assert set(KINDS) == set(kinds.registry())


def test_registrations_and_readings_pass_ingest_checks():
    fleet = Fleet.generate("s", wallets=2, devices=len(KINDS) * 5, first_seq=1000)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    for device in fleet.devices:
        registration = device.registration()
        devices.check_registration(registration)
        signing.verify(registration, "owner")
        first, second = device.next_reading(now), device.next_reading(now)
        for reading in (first, second):
            schemas.validate_definition("reading", reading)
            assert checks.check_reading(reading, now.timestamp(), checks.Limits()) is None, reading
        assert (first["seq"], second["seq"]) == (1001, 1002)
        assert first["ts"] == "2026-11-21T12:00:00.000Z"
