"""What a reward may claim under its policy (pure): the rule, the amount for the reading's values, the caps."""

from __future__ import annotations

import json

import pytest

from services.common.evidence import device_pseudonym
from services.common.policy import parse_policy
from services.common.signing import Keypair
from services.ledger.policies import Caps, RewardClaim, check_claim, claim_of, parse_published
from services.ledger.transactions import RejectedError
from tests.support.factories import ORACLE, TEST_POLICY, policy_publication, signed_reward
from tests.unit.test_rewards_samples import policy_document

POLICY = parse_policy(policy_document("caps-1"))  # data.air_quality 500; device 1200/h, wallet 5000/day


def claim(
    rule: str = "data.air_quality", amount: int = 500, device: str = "d1", wallet: str = "w1", **values
):
    return RewardClaim(
        policy_hash=POLICY.hash,
        kind=rule.split(".", 1)[1],
        rule=rule,
        amount=amount,
        values=values or {"pm2_5": 12.5, "pm10": 20.0},
        device=device,
        wallet=wallet,
        hour=500_000,
        day=20_833,
    )


def code(action) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(RejectedError) as caught:
        action()
    return caught.value.code


def test_a_reward_within_its_rule_and_caps_passes_and_anything_more_is_refused() -> None:
    check_claim(POLICY, claim(), 0, 0)
    check_claim(POLICY, claim(amount=499), 0, 0)  # paid less (a cap cut it): allowed
    assert code(lambda: check_claim(POLICY, claim(amount=501), 0, 0)) == "above-policy"
    assert code(lambda: check_claim(POLICY, claim(rule="data.noise"), 0, 0)) == "unknown-rule"
    assert code(lambda: check_claim(POLICY, claim(rule="bonus.air_quality"), 0, 0)) == "unknown-rule"
    assert code(lambda: check_claim(POLICY, claim(), 1200 - 499, 0)) == "cap-device-hour"
    assert code(lambda: check_claim(POLICY, claim(), 0, 5000 - 499)) == "cap-wallet-day"
    other = RewardClaim(**{**claim().__dict__, "policy_hash": "0" * 64})
    assert code(lambda: check_claim(POLICY, other, 0, 0)) == "unknown-policy"


def test_a_behaviour_reward_is_bounded_by_its_values() -> None:
    # 10 km at 0.168 kg CO2e/km and 100,000 micro-CITY/kg: 168,000.
    generous = parse_policy(
        policy_document("caps-2", caps={"device_per_hour": 10**9, "wallet_per_day": 10**9})
    )
    trip = RewardClaim(
        **{**claim("behaviour.bike_trip", 168_000, km=10).__dict__, "policy_hash": generous.hash}
    )
    check_claim(generous, trip, 0, 0)
    more = RewardClaim(**{**trip.__dict__, "amount": 168_001})
    assert code(lambda: check_claim(generous, more, 0, 0)) == "above-policy"


def test_caps_count_what_was_settled_per_device_hour_and_wallet_day() -> None:
    caps = Caps()
    for _ in range(2):
        caps.check_and_count(POLICY, claim())
    # The device's third 500 in the hour would make 1500 > 1200; another device of the wallet still earns.
    assert code(lambda: caps.check_and_count(POLICY, claim())) == "cap-device-hour"
    for device in ("d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9"):
        caps.check_and_count(POLICY, claim(device=device))
    assert caps.paid[("wallet-day", "w1", 20_833)] == 5000  # exactly the cap: allowed
    assert code(lambda: caps.check_and_count(POLICY, claim(device="d10"))) == "cap-wallet-day"
    caps.check_and_count(POLICY, claim(device="d10", wallet="w2"))


def test_a_rewards_claim_comes_from_its_public_reward_and_its_disclosed_values() -> None:
    value = signed_reward(Keypair.generate(), seq=3, amount=77)
    reward = value["reward"]
    found = claim_of(reward)
    assert (found.policy_hash, found.rule, found.amount, found.kind) == (
        TEST_POLICY.hash,
        "data.air",
        77,
        "air",
    )
    reading = json.loads(value["disclosure"]["envelope"])["reading"]
    assert (found.device, found.wallet) == (device_pseudonym(reading["device_id"]), reward["wallet"])
    assert found.device != reading["device_id"] and found.values is None  # the public sees no values
    assert found.hour == 1795255198 // 3600 and found.day == 1795255198 // 86400  # 2026-11-21T09:59:58Z
    assert claim_of(reward, reading["values"]).values == reading["values"]


def test_without_values_the_amount_is_bounded_by_the_most_its_rule_pays() -> None:
    # air_quality's data rule pays 500 whatever the values; a bike trip at most 300 km x 0.168 x 100,000.
    generous = parse_policy(
        policy_document("caps-3", caps={"device_per_hour": 10**9, "wallet_per_day": 10**9})
    )
    blind = RewardClaim(**{**claim().__dict__, "values": None, "policy_hash": generous.hash})
    check_claim(generous, blind, 0, 0)
    assert code(lambda: check_claim(generous, RewardClaim(**{**blind.__dict__, "amount": 501}), 0, 0)) == (
        "above-policy"
    )
    trip = RewardClaim(
        **{**claim("behaviour.bike_trip", 5_040_000).__dict__, "values": None, "policy_hash": generous.hash}
    )
    check_claim(generous, trip, 0, 0)
    assert code(
        lambda: check_claim(generous, RewardClaim(**{**trip.__dict__, "amount": 5_040_001}), 0, 0)
    ) == ("above-policy")


def test_a_publication_names_its_policy_by_the_documents_hash_and_must_be_signed() -> None:
    assert parse_published(policy_publication()).hash == TEST_POLICY.hash
    forged = {**policy_publication(), "publisher": Keypair.generate().did}
    assert code(lambda: parse_published(forged)) == "bad-signature"
    bad = ORACLE.sign({"publisher": ORACLE.did, "document": {"version": "x"}})
    assert code(lambda: parse_published(bad)) == "bad-policy"
