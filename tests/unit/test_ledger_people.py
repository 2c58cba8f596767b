"""The ledger's side of "one person, one share of rewards" (pure): a reward names the person ingest attested
its wallet bound to, the person's day cap spans their wallets, and a policy requiring binding refuses a
reward that names no person."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from services.common.policy import parse_policy
from services.common.signing import Keypair
from services.ledger.policies import Caps, RewardClaim, check_claim, claim_of
from services.ledger.rewards import verify_disclosure, verify_public
from services.ledger.transactions import RejectedError
from tests.support.factories import INGEST, ORACLE, oracle_attested, public, signed_reward
from tests.unit.test_rewards_samples import policy_document

PEOPLE = parse_policy(
    policy_document(
        "people-1",
        caps={"device_per_hour": 10**9, "wallet_per_day": 10**9, "person_per_day": 1200},
        people={"binding_required": True, "wallets_per_person": 3},
    )
)
ALICE = hashlib.sha256(b"alice").hexdigest()


def claim(wallet: str, device: str = "d1", person: str | None = ALICE, amount: int = 500) -> RewardClaim:
    return RewardClaim(
        policy_hash=PEOPLE.hash,
        kind="air_quality",
        rule="data.air_quality",
        amount=amount,
        values={"pm2_5": 12.5, "pm10": 20.0},
        device=device,
        wallet=wallet,
        hour=500_000,
        day=20_833,
        person=person,
    )


def code(call: Any) -> str:
    with pytest.raises(RejectedError) as caught:
        call()
    return caught.value.code


def test_the_person_day_cap_spans_two_wallets_and_two_devices() -> None:
    caps = Caps()
    caps.check_and_count(PEOPLE, claim("w1", "d1"))
    caps.check_and_count(PEOPLE, claim("w2", "d2"))
    assert caps.paid[("person-day", ALICE, 20_833)] == 1000
    # A third 500 for Alice, through either wallet: 1500 > 1200.
    assert code(lambda: caps.check_and_count(PEOPLE, claim("w1", "d3"))) == "cap-person-day"
    assert code(lambda: caps.check_and_count(PEOPLE, claim("w3", "d4"))) == "cap-person-day"
    caps.check_and_count(PEOPLE, claim("w2", "d2", amount=200))  # exactly the cap: allowed
    caps.check_and_count(PEOPLE, claim("w9", "d9", person=hashlib.sha256(b"bob").hexdigest()))


def test_a_policy_requiring_binding_refuses_a_reward_naming_no_person() -> None:
    assert code(lambda: check_claim(PEOPLE, claim("w1", person=None), 0, 0)) == "unverified-person"
    plain = parse_policy(policy_document("plain"))
    check_claim(plain, RewardClaim(**{**claim("w1", person=None).__dict__, "policy_hash": plain.hash}), 0, 0)


def test_the_person_is_public_and_must_be_the_one_ingest_attested() -> None:
    value = signed_reward(Keypair.generate(), person=ALICE)
    reward = value["reward"]
    assert claim_of(reward).person == ALICE
    assert verify_public(reward, oracle_attested(value)) == ORACLE.did
    assert verify_disclosure(reward, value["disclosure"])[1] == INGEST.did
    # Naming someone else's person, or none, is not what the evidence ingest attested says.
    dropped = {k: v for k, v in reward.items() if k != "person"}
    for changed in (public(value, person="0" * 64), {**value, "reward": dropped}):
        assert code(lambda c=changed: verify_disclosure(c["reward"], c["disclosure"])) == "person-mismatch"
    unbound = signed_reward(Keypair.generate())
    assert claim_of(unbound["reward"]).person is None and "person" not in unbound["reward"]
