"""Consent in the rewards engine: a reading is decided on its owner's consent in force at the reading's own
time (pure, no broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.common import events, schemas
from services.common.consents import CITY, ConsentBook, check_consent
from services.common.policy import parse_policy
from services.common.signing import Keypair
from services.common.topics import REWARD_DECISIONS
from services.rewards.engine import NO_CONSENT, Decision, State, decide
from services.rewards.processor import consent_of
from services.rewards.readings import AcceptedReading, accept
from tests.unit.test_rewards_samples import Device, policy_document

POLICY = parse_policy(policy_document("t1", caps={"device_per_hour": 10**9, "wallet_per_day": 10**9}))
START = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    return events.rfc3339(START + timedelta(seconds=seconds))


def reading(device: Device, seq: int, seconds: float) -> AcceptedReading:
    values = {"pm2_5": 10.0 + seq % 7, "pm10": 20.0 + seq % 5}
    return accept(device.envelope(seq, ts=at(seconds), values=values), {})


def change(owner: Keypair, action: str, seconds: float, **fields: str):
    body = {
        "subject": owner.did,
        "category": "environment",
        "grantee": CITY,
        "action": action,
        "purpose": "air quality rewards",
        "issued_at": at(seconds),
        **fields,
    }
    return check_consent(owner.sign(body))


def decide_all(
    book: ConsentBook, readings: list[AcceptedReading], state: State | None = None
) -> list[Decision]:
    state = state or State()
    decisions = []
    for accepted in readings:
        decision = decide(accepted, POLICY, state, consent_of(accepted, book.at))
        state.apply(decision)
        decisions.append(decision)
    return decisions


def test_readings_after_a_revocation_earn_nothing_however_late_they_are_decided():
    device = Device()
    book = ConsentBook()
    book.apply(change(device.owner, "grant", -3600))
    book.apply(change(device.owner, "revoke", 100))
    before, after, later = decide_all(
        book, [reading(device, 1, 99), reading(device, 2, 101), reading(device, 3, 900)]
    )
    assert before.payments and before.counted
    assert before.consent == {
        "category": "environment",
        "status": "granted",
        "issued_at": at(-3600),
        "consent_id": book.at(device.owner.did, "environment", START).consent_id,
    }
    for refused in (after, later):
        assert refused.payments == () and not refused.counted
        assert [r.code for r in refused.reasons] == [NO_CONSENT]
        assert refused.values == {}  # the data it was not consented to is not kept in the decision
        assert refused.consent["status"] == "revoked" and refused.consent["issued_at"] == at(100)


def test_no_grant_an_expired_grant_and_a_re_grant():
    device, stranger = Device(), Device()
    book = ConsentBook()
    book.apply(change(device.owner, "grant", 0, until=at(60)))
    book.apply(change(device.owner, "grant", 300))
    decisions = decide_all(
        book,
        [reading(device, 1, 30), reading(device, 2, 120), reading(device, 3, 301), reading(stranger, 1, 30)],
    )
    assert [d.consent["status"] for d in decisions] == ["granted", "expired", "granted", "none"]
    assert [bool(d.payments) for d in decisions] == [True, False, True, False]


def test_replayed_backdated_and_reencoded_grants_after_a_revocation_change_nothing():
    device = Device()
    grant = change(device.owner, "grant", -3600)
    book = ConsentBook()
    book.apply(grant)
    book.apply(change(device.owner, "revoke", 100))
    assert not book.apply(grant)  # an old copy published again
    assert not book.apply(change(device.owner, "grant", 50))  # newly signed, dated before the revocation
    good, refused = decide_all(book, [reading(device, 1, 60), reading(device, 2, 200)])
    assert good.payments and good.consent["status"] == "granted"
    assert refused.consent["status"] == "revoked" and [r.code for r in refused.reasons] == [NO_CONSENT]


def test_a_decision_keeps_what_it_was_decided_on():
    """The decision record names the consent it rests on and rebuilds the same state; a redelivered reading
    gets its earlier decision, whatever the consents say by then."""
    device = Device()
    book = ConsentBook()
    book.apply(change(device.owner, "grant", 0))
    state = State()
    paid, refused_later = reading(device, 1, 10), reading(device, 2, 200)
    first = decide_all(book, [paid], state)[0]
    book.apply(change(device.owner, "revoke", 5))  # signed before the reading, learnt after its decision
    second = decide_all(book, [refused_later], state)[0]
    assert first.payments and not second.payments
    assert state.recent[paid.reading_id] is first  # a redelivery is answered from here, unchanged
    rebuilt = State()
    for decision in (first, second):
        value = decision.as_json(0, 1) | {"decided_by": "test"}
        schemas.validate(REWARD_DECISIONS, value)
        back = Decision.from_json(value)
        assert back == decision
        rebuilt.apply(back)
    assert rebuilt.wallet_day == state.wallet_day and rebuilt.devices == state.devices
    assert rebuilt.devices[device.did].max_seq == 2  # the refused reading is decided: its seq is spent
    assert rebuilt.devices[device.did].last_values == state.devices[device.did].last_values  # first's only


def test_without_a_consent_lookup_the_engine_decides_as_before():
    device = Device()
    [decision] = [decide(reading(device, 1, 0), POLICY, State())]
    assert decision.payments and decision.consent is None
    assert "consent" not in decision.as_json(0, 0)
