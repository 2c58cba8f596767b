"""The reward policy (pure): a versioned set of rules, and the rewards a reading earns under it.

A reward is deterministic: its id is sha256 hex of ``'<reading_id>/<rule>'``, and every field comes from
the reading, the rule and the policy version, so a redelivered reading yields the same reward, byte for
byte, and the ledger's unique reward id keeps it from paying twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.common.ids import reward_id
from services.rewards.readings import AcceptedReading
from services.rewards.rules import RewardDecision, Rule

CURRENCY = "CITY"


@dataclass(frozen=True)
class Policy:
    """A version and its rules; each rule pays at most one reward per reading."""

    version: str
    rules: tuple[Rule, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.version, str) or not 1 <= len(self.version) <= 64:
            raise ValueError(f"a policy version is a string of 1 to 64 characters: {self.version!r}")
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            # Two rules of one name would derive the same reward id for different rewards.
            raise ValueError(f"rule names must be unique: {names}")

    def decide(self, reading: AcceptedReading) -> list[RewardDecision]:
        """The rewards `reading` earns, one per applicable rule, in rule order."""
        return [decision for rule in self.rules if (decision := rule.evaluate(reading)) is not None]

    def rewards(self, reading: AcceptedReading) -> list[dict[str, Any]]:
        """The reward objects (schemas/rewards.v1.json) `reading` earns under this policy."""
        return [reward(reading, decision, self.version) for decision in self.decide(reading)]


def reward(reading: AcceptedReading, decision: RewardDecision, policy_version: str) -> dict[str, Any]:
    """The reward object of `decision` on `reading`: paid to the reading's owner, with the signed evidence."""
    return {
        "reward_id": reward_id(reading.reading_id, decision.rule),
        "wallet": reading.owner,
        "amount": decision.amount,
        "currency": CURRENCY,
        "rule": decision.rule,
        "policy_version": policy_version,
        "reading_id": reading.reading_id,
        "earned_at": reading.ts,
        "evidence": {"reading": reading.reading, "registration": reading.registration},
    }
