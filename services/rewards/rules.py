"""Reward rules (pure): each maps an accepted reading to a reward decision, or to none.

There is one flat rule for now. The policy engine to come adds rules that look at a reading's kind,
zone and values, and stateful ones (caps, anti-gaming) that get their state passed in: a rule stays a
function of its inputs, so the same reading under the same policy always earns the same rewards.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from services.rewards.readings import AcceptedReading

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"  # schemas/defs.v1.json#/$defs/name
MAX_MICRO_UNITS = 2**53 - 1  # schemas/defs.v1.json#/$defs/micro_units: exact in every JSON parser


def check_name(name: str) -> str:
    """Return `name` if it is a valid rule name (schemas/defs.v1.json#/$defs/name), else raise ValueError."""
    if not isinstance(name, str) or len(name) > 64 or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(f"{name!r} is not a rule name (lowercase letters, digits, '_', '.', '-'; 1-64)")
    return name


def check_amount(amount: int) -> int:
    """Return `amount` if it is a payable count of micro-units (an int from 1 up), else raise ValueError."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= MAX_MICRO_UNITS:
        raise ValueError(
            f"a reward amount is an integer of micro-units from 1 to {MAX_MICRO_UNITS}: {amount!r}"
        )
    return amount


@dataclass(frozen=True)
class RewardDecision:
    """One reward a reading earns: which rule pays it and how many micro-CITY."""

    rule: str
    amount: int

    def __post_init__(self) -> None:
        check_name(self.rule)
        check_amount(self.amount)


class Rule(Protocol):
    """A named rule; `evaluate` is pure and returns None when the rule does not apply."""

    @property
    def name(self) -> str: ...

    def evaluate(self, reading: AcceptedReading) -> RewardDecision | None: ...


@dataclass(frozen=True)
class FlatRule:
    """Pays the same amount for every accepted reading."""

    name: str
    amount: int

    def __post_init__(self) -> None:
        check_name(self.name)
        check_amount(self.amount)

    def evaluate(self, reading: AcceptedReading) -> RewardDecision:
        return RewardDecision(rule=self.name, amount=self.amount)
