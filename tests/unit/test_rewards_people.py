"""One person, one share of rewards (the engine, pure): a wallet earns only once bound to a person, a person
earns with at most N wallets a day, and the day cap is the person's across all their wallets and devices."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.common import schemas
from services.common.policy import parse_policy
from services.common.signing import Keypair
from services.common.topics import READINGS, REWARD_DECISIONS
from services.rewards.engine import CAP_PERSON_DAY, UNVERIFIED_PERSON, Decision, State, decide
from services.rewards.processor import reward
from services.rewards.readings import AcceptedReading, accept
from tests.support.factories import INGEST
from tests.unit.test_rewards_samples import Device, policy_document

PEOPLE = {"binding_required": True, "wallets_per_person": 2}
CAPS = {"device_per_hour": 10**9, "wallet_per_day": 10**9, "person_per_day": 1800}
POLICY = parse_policy(policy_document("people-1", caps=CAPS, people=PEOPLE))
START = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
ALICE = hashlib.sha256(b"alice's credential").hexdigest()
BOB = hashlib.sha256(b"bob's credential").hexdigest()


def at(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reading(device: Device, seq: int, seconds: float, person: str | None) -> AcceptedReading:
    envelope = device.envelope(seq, ts=at(seconds), values={"pm2_5": 10.0 + seq % 7, "pm10": 20.0 + seq % 5})
    if person is not None:
        envelope["person"] = person
    schemas.validate(READINGS, envelope)
    return accept(envelope, {})


def run(state: State, accepted: AcceptedReading) -> Decision:
    decision = decide(accepted, POLICY, state)
    state.apply(decision)
    return decision


def codes(decision: Decision) -> list[str]:
    return [r.code for r in decision.reasons]


def test_the_policy_reads_its_people_section_and_person_cap():
    assert (POLICY.binding_required, POLICY.wallets_per_person, POLICY.person_per_day) == (True, 2, 1800)
    plain = parse_policy(policy_document("plain"))
    assert (plain.binding_required, plain.wallets_per_person, plain.person_per_day) == (False, None, None)


def test_an_unbound_wallets_reading_is_data_but_unrewarded_unverified_person():
    decision = run(State(), reading(Device(), 1, 0, person=None))
    assert decision.payments == () and codes(decision) == [UNVERIFIED_PERSON]
    assert decision.counted  # still counted as data: it joined the zone's window
    assert "not bound" in decision.reasons[0].detail
    # Without `people` in the policy, an unbound wallet earns as before.
    plain = parse_policy(policy_document("plain", caps=CAPS))
    assert decide(reading(Device(), 1, 0, person=None), plain, State()).payments == (
        ("data.air_quality", 500),
    )


def test_twenty_made_up_wallets_earn_nothing_until_bound():
    state = State()
    decisions = [run(state, reading(Device(owner=Keypair.generate()), 1, i, None)) for i in range(20)]
    assert all(d.payments == () for d in decisions)
    assert {code for d in decisions for code in codes(d)} == {UNVERIFIED_PERSON}


def test_a_person_earns_with_at_most_n_wallets_a_day():
    state = State()
    wallets = [Device(owner=Keypair.generate()) for _ in range(3)]
    first, second, third = (run(state, reading(d, 1, i * 10, ALICE)) for i, d in enumerate(wallets))
    assert first.payments and second.payments
    assert third.payments == () and codes(third) == [UNVERIFIED_PERSON]
    assert "already earns with 2 wallets" in third.reasons[0].detail
    # The first two go on earning; the third still does not; someone else's wallet is not affected.
    assert run(state, reading(wallets[0], 2, 100, ALICE)).payments
    assert codes(run(state, reading(wallets[2], 2, 110, ALICE))) == [UNVERIFIED_PERSON]
    assert run(state, reading(Device(), 1, 120, BOB)).payments
    # The next day the limit starts again (the first two wallets to earn that day).
    assert run(state, reading(wallets[2], 3, 86400 + 10, ALICE)).payments


def test_the_person_day_cap_spans_their_wallets_and_devices():
    state = State()
    owner_a, owner_b = Keypair.generate(), Keypair.generate()
    devices = [Device(owner=owner_a), Device(owner=owner_a), Device(owner=owner_b)]  # 2 wallets, 3 devices
    paid = [run(state, reading(d, 1 + i // 3, i * 10, ALICE)) for i, d in enumerate(devices * 2)]
    # 500 a reading, 1800 a day for Alice: 500, 500, 500, 300 (cut), then nothing.
    assert [sum(a for _, a in d.payments) for d in paid] == [500, 500, 500, 300, 0, 0]
    assert codes(paid[3]) == [CAP_PERSON_DAY] and "person's cap of 1800" in paid[3].reasons[0].detail
    assert codes(paid[4]) == [CAP_PERSON_DAY] and paid[4].reasons[0].rule == "data.air_quality"
    # Another person in the same zone is paid; Alice is paid again the next day.
    assert run(state, reading(Device(), 1, 70, BOB)).payments == (("data.air_quality", 500),)
    assert run(state, reading(devices[2], 5, 86400 + 1, ALICE)).payments == (("data.air_quality", 500),)


def test_decisions_name_the_person_and_rebuild_the_same_state():
    state = State()
    owner = Keypair.generate()
    decisions = [run(state, reading(Device(owner=owner), 1, i, ALICE)) for i in range(5)]
    decisions.append(run(state, reading(Device(), 1, 9, None)))
    rebuilt = State()
    for offset, decision in enumerate(decisions):
        value = {**decision.as_json(0, offset), "decided_by": "test"}
        schemas.validate(REWARD_DECISIONS, value)
        assert ("person" in value) == (decision.person is not None)
        back = Decision.from_json(value)
        assert back == decision
        rebuilt.apply(back)
    assert rebuilt.person_day == state.person_day == {(ALICE, int(START.timestamp() // 86400)): 1800}
    assert rebuilt.person_wallets == state.person_wallets
    # The public reward names the person (the person-day cap counts by it on the chain).
    accepted = replace(reading(Device(), 1, 0, ALICE), attestation={"signer": INGEST.did})
    key = b"k" * 32
    assert (
        reward(accepted, "data.air_quality", 500, "people-1", POLICY.hash, key)["reward"]["person"] == ALICE
    )
    unbound = replace(accepted, person=None)
    assert "person" not in reward(unbound, "data.air_quality", 500, "people-1", POLICY.hash, key)["reward"]
