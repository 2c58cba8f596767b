"""The policy file: the city's file is valid and covers every kind; bad files are refused with the reason."""

from __future__ import annotations

import random
from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from services.common.policy import PolicyError, load_policy, parse_policy
from services.rewards.settings import DEFAULT_POLICY, RewardsSettings
from services.simulator.fleet import KINDS
from tests.unit.test_rewards_samples import policy_document

ISSUE_KINDS = {"air_quality", "noise", "traffic_count", "energy_saved", "bike_trip", "recycling_dropoff"}


def test_the_citys_policy_loads_and_covers_the_simulators_and_the_issues_kinds():
    policy = load_policy(DEFAULT_POLICY)
    assert RewardsSettings().policy_path == DEFAULT_POLICY
    assert set(KINDS) | ISSUE_KINDS <= set(policy.kinds)
    for kind in policy.kinds.values():
        # Every kind pays something, and every behaviour factor says where it comes from.
        assert kind.data_reward > 0 or kind.behaviour, kind.kind
        for factor in kind.behaviour.values():
            assert factor.source.strip() and factor.kg_co2e_per_unit > 0
    assert policy.kinds["bike_trip"].behaviour["km"].kg_co2e_per_unit == Fraction("0.168")


def test_every_simulated_reading_is_possible_under_the_citys_policy():
    policy = load_policy(DEFAULT_POLICY)
    rng = random.Random(4)
    for kind, make in KINDS.items():
        bounds = policy.kinds[kind].bounds
        for _ in range(200):
            for name, value in make(rng).items():
                assert bounds[name].low <= value <= bounds[name].high, (kind, name, value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


def test_a_policy_file_is_read_from_yaml(tmp_path: Path):
    policy = load_policy(write(tmp_path, yaml.safe_dump(policy_document("2026.12"))))
    assert policy.version == "2026.12" and policy.device_per_hour == 1200


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: [unclosed", "is not valid YAML"),
        ("just a string", "does not fit policy.v1.json: (root)"),
        (yaml.safe_dump({**policy_document(), "version": ""}), "version"),
        (
            yaml.safe_dump({**policy_document(), "caps": {"device_per_hour": 1.5, "wallet_per_day": 1}}),
            "caps",
        ),
        (
            yaml.safe_dump(
                {**policy_document(), "kinds": {"Air Quality": {"values": {"x": {"min": 0, "max": 1}}}}}
            ),
            "kinds",
        ),
        (yaml.safe_dump({**policy_document(), "surprise": 1}), "surprise"),
    ],
)
def test_a_bad_policy_file_is_refused_naming_the_file_and_the_field(tmp_path: Path, text: str, message: str):
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_inconsistent_policies_are_refused():
    document = policy_document()
    document["kinds"]["air_quality"]["values"]["pm2_5"] = {"min": 10, "max": 1}
    with pytest.raises(PolicyError, match=r"min 10\.0 is above max 1\.0"):
        parse_policy(document)
    document = policy_document()
    document["kinds"]["bike_trip"]["behaviour"]["factors"] = {"miles": {"kg_co2e_per_unit": 1, "source": "x"}}
    with pytest.raises(PolicyError, match="'miles' is not one of the kind's values"):
        parse_policy(document)


def test_a_missing_policy_file_is_refused(tmp_path: Path):
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policy(tmp_path / "nowhere.yaml")
