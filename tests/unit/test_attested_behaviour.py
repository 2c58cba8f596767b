"""Attested behaviour (pure): a city device's receipt binds a citizen's reading; ingest refuses a receipt that
does not hold, with its reason; the policy names the device classes each behaviour kind needs; rewards decides
a reading without one ``unattested``, and the ledger (and the verifier's replay) refuse a reward for it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.common import evidence, ids, receipts, schemas, signing
from services.common.policy import PolicyError, load_policy, parse_policy
from services.common.signing import Keypair
from services.ingest import checks, devices
from services.ingest.checks import Reason
from services.ledger.policies import Caps, check_claim, claim_of
from services.ledger.transactions import RejectedError
from services.rewards.engine import UNATTESTED, State, decide
from services.rewards.readings import accept
from services.simulator.fleet import ATTESTING_CLASS, Fleet
from tests.support.factories import receipted, reencoded
from tests.unit.test_rewards_samples import RECEIVED_AT, TS, Device, expected_reading_id, policy_document

CITIZEN, OWNER, STATION, GATE, OPERATOR = (Keypair.generate() for _ in range(5))
NOW = datetime.fromisoformat(TS).timestamp()
CITY_POLICY = Path(__file__).parents[2] / "services/rewards/policies/city.yaml"


def body(device: Keypair = CITIZEN, seq: int = 1, **fields) -> dict:
    return {
        "device_id": device.did,
        "seq": seq,
        "ts": TS,
        "kind": "recycling_dropoff",
        "zone": "old-town",
        "values": {"glass": 2.5},
        **fields,
    }


def good(seq: int = 1) -> dict:
    return receipted(CITIZEN, STATION, "recycling_station", body(seq=seq))


def registered(key: Keypair, owner: Keypair, kind: str, device_class: str | None = None) -> devices.Device:
    registration = {"device_id": key.did, "owner": owner.did, "kind": kind, "zone": "old-town"}
    if device_class:
        registration["class"] = device_class
    return devices.Device(
        key.did,
        owner.did,
        kind,
        "old-town",
        devices.sign_registration(owner, key, registration),
        datetime.now(UTC),
    )


REGISTRY = {
    STATION.did: registered(STATION, OPERATOR, "recycling_dropoff", "recycling_station"),
    GATE.did: registered(GATE, OPERATOR, "transit_checkin", "transit_gate"),
    CITIZEN.did: registered(CITIZEN, OWNER, "recycling_dropoff"),
}


def verdict(reading: dict, registry: dict | None = None) -> Reason | None:
    """What ingest says of `reading`: its own checks, then its device's and its receipt's registration."""
    rejection = checks.check_reading(reading, NOW, checks.Limits()) or checks.check_attester(
        reading, REGISTRY if registry is None else registry
    )
    return rejection.reason if rejection else None


# --- the receipt and ingest's checks -------------------------------------------------------------------------


def test_a_receipt_binds_the_reading_and_the_citizens_signature_covers_it():
    reading = good()
    schemas.validate_definition("reading", reading)
    receipt = reading["receipt"]
    assert set(receipt) == {"city_device", "class", "reading", "sig"}
    assert receipt["reading"] == signing.sha256_hex(signing.canonical_bytes(body()))
    signing.verify(reading, "device_id")  # the device signed after attaching the receipt
    receipts.check(reading)
    assert verdict(reading) is None
    assert receipts.attester_class(reading) == "recycling_station"
    assert receipts.attester_class(body()) is None
    assert STATION.did in checks.claimed_device_ids([reading, {"device_id": ["not", "a", "did"]}, 7])


def test_each_forged_or_misplaced_receipt_is_refused_with_its_reason():
    stranger, neighbour = Keypair.generate(), Keypair.generate()
    receipt = good()["receipt"]
    cases = {
        # signed by a key nobody registered
        Reason.UNKNOWN_ATTESTER: receipted(CITIZEN, stranger, "recycling_station", body(seq=2)),
        # by a registered city device of another kind (a transit gate receipting a drop-off)
        Reason.ATTESTER_MISMATCH: receipted(CITIZEN, GATE, "transit_gate", body(seq=3)),
        # claiming a class its registration does not give it
        "class": receipted(CITIZEN, STATION, "smart_meter", body(seq=4)),
        # by a citizen's own device: its own, or another citizen's registered device
        Reason.SELF_ATTESTED: receipted(CITIZEN, CITIZEN, "recycling_station", body(seq=5)),
        Reason.NOT_CITY_DEVICE: receipted(CITIZEN, neighbour, "recycling_station", body(seq=6)),
        # the good reading's receipt replayed onto another reading (another seq, or more glass)
        Reason.RECEIPT_MISMATCH: CITIZEN.sign({**body(seq=7), "receipt": receipt}),
        "values": CITIZEN.sign({**body(values={"glass": 250.0}), "receipt": receipt}),
        # the receipt's signature written another way (the same 64 bytes), then signed by the citizen
        Reason.BAD_RECEIPT_SIGNATURE: CITIZEN.sign({**body(), "receipt": reencoded(receipt)}),
        "forged": CITIZEN.sign({**body(), "receipt": {**receipt, "sig": stranger.sign(receipt)["sig"]}}),
        # a receipt that is not one: the reading's shape is wrong, named by the field
        Reason.INVALID_READING: CITIZEN.sign({**body(), "receipt": {**receipt, "class": "citizen"}}),
    }
    registry = {**REGISTRY, neighbour.did: registered(neighbour, OWNER, "recycling_dropoff")}
    found = {case: verdict(reading, registry) for case, reading in cases.items()}
    assert found == {
        **{reason: reason for reason in cases if isinstance(reason, Reason)},
        "class": Reason.ATTESTER_MISMATCH,
        "values": Reason.RECEIPT_MISMATCH,
        "forged": Reason.BAD_RECEIPT_SIGNATURE,
    }
    assert verdict(good(8), registry) is None  # the good one beside them


def test_a_revoked_city_devices_receipts_are_refused():
    revoked = registered(STATION, OPERATOR, "recycling_dropoff", "recycling_station")
    revoked = devices.Device(**{**revoked.__dict__, "revoked_at": datetime.now(UTC)})
    assert verdict(good(), {**REGISTRY, STATION.did: revoked}) is Reason.REVOKED_ATTESTER


def test_only_an_operator_registers_a_city_device():
    station = registered(STATION, OPERATOR, "recycling_dropoff", "recycling_station").registration
    devices.check_registration(station)
    devices.check_city_device(station, [OPERATOR.did])
    devices.check_city_device(registered(CITIZEN, OWNER, "recycling_dropoff").registration, [])  # no class
    with pytest.raises(devices.OperatorRequiredError):
        devices.check_city_device(station, [Keypair.generate().did])
    with pytest.raises(devices.InvalidRegistrationError, match="class"):
        devices.check_registration({**station, "class": "lamp_post"})


# --- the policy, rewards and the ledger ----------------------------------------------------------------------

ATTESTED = parse_policy(
    policy_document(
        "attested-1",
        caps={"device_per_hour": 10**9, "wallet_per_day": 10**9},
        kinds={
            **policy_document()["kinds"],
            "recycling_dropoff": {
                "attested_by": ["recycling_station"],
                "values": {"glass": {"min": 0.001, "max": 500, "required": False}},
                "behaviour": {"factors": {"glass": {"kg_co2e_per_unit": 0.3, "source": "test factor"}}},
            },
        },
    )
)


def envelope(reading: dict, owner: Keypair = OWNER) -> dict:
    return {
        "reading_id": expected_reading_id(reading["device_id"], reading["seq"]),
        "owner": owner.did,
        "received_at": RECEIVED_AT,
        "reading": reading,
        "registration": REGISTRY[CITIZEN.did].registration,
    }


def test_the_policy_names_the_classes_that_attest_each_kind():
    assert ATTESTED.kinds["recycling_dropoff"].attested_by == ("recycling_station",)
    assert ATTESTED.kinds["bike_trip"].attested_by == ()
    document = policy_document()
    document["kinds"]["bike_trip"]["attested_by"] = ["lamp_post"]
    with pytest.raises(PolicyError, match="attested_by"):
        parse_policy(document)
    city = load_policy(CITY_POLICY)
    assert {k: v.attested_by for k, v in city.kinds.items() if v.attested_by} == {
        kind: (device_class,) for kind, device_class in ATTESTING_CLASS.items()
    }


def test_rewards_pays_attested_behaviour_and_decides_the_rest_unattested():
    state = State()
    paid = decide(accept(envelope(good(1)), {}), ATTESTED, state)
    state.apply(paid)
    assert paid.payments == (("behaviour.recycling_dropoff", 75000),) and paid.counted  # 2.5 kg x 0.3 x 1e5
    citizen_only = decide(accept(envelope(CITIZEN.sign(body(seq=2))), {}), ATTESTED, state)
    state.apply(citizen_only)
    wrong_class = decide(
        accept(envelope(receipted(CITIZEN, GATE, "transit_gate", body(seq=3))), {}), ATTESTED, state
    )
    for decision in (citizen_only, wrong_class):
        assert decision.payments == () and [r.code for r in decision.reasons] == [UNATTESTED]
        assert not decision.counted  # nor in the zone's statistics
    assert "none" in citizen_only.reasons[0].detail and "transit_gate" in wrong_class.reasons[0].detail
    # A kind the policy needs no receipt for is paid as before.
    assert decide(
        accept(Device(kind="bike_trip").envelope(1, values={"km": 1.0}), {}), ATTESTED, State()
    ).payments


def reward(reading: dict, amount: int = 75000) -> dict:
    """The public reward of `reading` (what the chain says of its receipt: the attesting class)."""
    envelope = {"reading_id": ids.reading_id(reading["device_id"], reading["seq"]), "owner": OWNER.did}
    return {
        "policy_hash": ATTESTED.hash,
        "rule": "behaviour.recycling_dropoff",
        "amount": amount,
        **evidence.public_facts({**envelope, "reading": reading}),
    }


def test_the_ledger_refuses_a_reward_for_unattested_behaviour():
    check_claim(ATTESTED, claim_of(reward(good())), 0, 0)
    for reading in (CITIZEN.sign(body()), receipted(CITIZEN, GATE, "transit_gate", body())):
        with pytest.raises(RejectedError) as caught:
            check_claim(ATTESTED, claim_of(reward(reading)), 0, 0)
        assert caught.value.code == "unattested"
    # The verifier's replay counts through the same check.
    caps = Caps()
    caps.check_and_count(ATTESTED, claim_of(reward(good(2))))
    with pytest.raises(RejectedError, match="unattested"):
        caps.check_and_count(ATTESTED, claim_of(reward(CITIZEN.sign(body(seq=3)))))
    assert sum(caps.paid.values()) == 2 * 75000  # device and wallet counters of the one attested reward


# --- the simulator ----------------------------------------------------------------------------------------------


def test_the_simulators_city_devices_attest_its_behaviour_readings():
    operator = Keypair.generate()
    fleet = Fleet.generate("s", wallets=2, devices=22, operator=operator, city_devices_per_kind=2)
    assert len(fleet.city_devices) == 2 * len(ATTESTING_CLASS)
    city = {}
    for city_device in fleet.city_devices:
        registration = city_device.registration()
        devices.check_registration(registration)
        devices.check_city_device(registration, [operator.did])
        city[city_device.device_id] = registered(
            city_device.key, operator, city_device.kind, city_device.device_class
        )
    policy = load_policy(CITY_POLICY)
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    for device in fleet.devices:
        reading = device.next_reading(now)
        assert checks.check_reading(reading, now.timestamp(), checks.Limits()) is None
        assert checks.check_attester(reading, city) is None
        assert policy.kinds[device.kind].attested(reading)
        assert ("receipt" in reading) == (device.kind in ATTESTING_CLASS)
    # Without an operator, nothing attests: the same readings carry no receipt.
    assert not any("receipt" in d.next_reading(now) for d in Fleet.generate("s", 2, 22).devices)
    assert registered(CITIZEN, OWNER, "noise").device_class is None
