"""The reward policy (pure): a versioned YAML file the city edits, validated by ``schemas/policy.v1.json``.

Per reading kind it sets the data reward (rule ``data.<kind>``), the possible range of each value, the
behaviour reward (rule ``behaviour.<kind>``: each value times its CO2e conversion factor, with its
source, times the price of a kg CO2e), the city device classes whose receipt a reading needs to be paid
(``attested_by``: behaviour is paid only when a city device attests it) and overrides of the quality checks;
and for all kinds the caps per device per hour, per wallet per day and per person per day, and whether a
wallet must be bound to a person (a resident credential, ``city.bindings.v1``) to earn, with how many wallets
a person earns in a day (``people``).
`load_policy` refuses a file that does not fit, with the reason.

A reward is deterministic: its id is sha256 hex of ``'<reading_id>/<rule>'``, its amount comes from the
reading and the policy alone (integer arithmetic on exact fractions of the decimal numbers as written),
so the same reading under the same policy always earns the same reward, byte for byte.

A policy is named by its hash (`Policy.hash`: sha256 hex of the JCS bytes of the document), which every
reward carries. The rewards worker publishes each policy it runs to the ledger, which keeps the document on
the chain and checks each reward against the policy it names with this same module: the ledger and the
verifier recompute what a rule pays, so a reward the policy does not allow never settles.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from services.common import receipts, schemas, signing

CURRENCY = "CITY"
POLICY_SCHEMA = "policy.v1.json"
DATA_RULE = "data"
BEHAVIOUR_RULE = "behaviour"
MAX_MICRO_UNITS = 2**53 - 1  # schemas/defs.v1.json#/$defs/micro_units: exact in every JSON parser


DEFAULT_K_ANONYMITY = 5
"""Fewest distinct devices a published zone statistic rests on, unless the policy's ``privacy`` says."""
DEFAULT_LATE_S = 86_400
"""A reading taken up to a day before ingest received it is paid (ingest's INGEST_MAX_AGE_S agrees)."""


class PolicyError(ValueError):
    """A policy file that cannot be used; the message says which file and why."""


@dataclass(frozen=True)
class Bounds:
    """The possible range of one value of a kind; outside it a reading is impossible."""

    low: float
    high: float
    required: bool = True


@dataclass(frozen=True)
class Burst:
    """More than `max_readings` from one device within `per_seconds`: a burst."""

    max_readings: int
    per_seconds: int


@dataclass(frozen=True)
class Outlier:
    """A value whose robust z-score against the zone's window exceeds `robust_z` is an outlier."""

    enabled: bool
    robust_z: float
    min_samples: int


@dataclass(frozen=True)
class Factor:
    """kg CO2e avoided per unit of a value, and where that figure comes from."""

    kg_co2e_per_unit: Fraction
    source: str


@dataclass(frozen=True)
class KindPolicy:
    """What readings of one kind earn and how they are checked."""

    kind: str
    data_reward: int
    bounds: Mapping[str, Bounds]
    behaviour: Mapping[str, Factor]  # by value name; empty: no behaviour reward
    stuck_repeats: int | None
    burst: Burst
    outlier: Outlier
    late_s: int = DEFAULT_LATE_S
    """How long after it was taken a reading may reach ingest and still be paid."""
    attested_by: tuple[str, ...] = ()
    """The city device classes whose receipt a reading of this kind needs to be paid (services/common/
    receipts.py); empty: none is needed."""

    def attested(self, reading: Mapping[str, Any]) -> bool:
        """True if a reading of this kind needs no receipt, or carries one of a city device of a class the
        policy names (as ingest checked it: trust this only of an attested reading)."""
        return not self.attested_by or receipts.attester_class(reading) in self.attested_by

    @property
    def data_rule(self) -> str:
        return f"{DATA_RULE}.{self.kind}"

    @property
    def behaviour_rule(self) -> str:
        return f"{BEHAVIOUR_RULE}.{self.kind}"


@dataclass(frozen=True)
class Policy:
    """One version of the policy."""

    version: str
    device_per_hour: int
    wallet_per_day: int
    micro_city_per_kg_co2e: int
    kinds: Mapping[str, KindPolicy]
    person_per_day: int | None = None
    """Most micro-CITY one person earns in a UTC day across their wallets; None: no per-person cap."""
    binding_required: bool = False
    """Only readings whose envelope names the owner's person (a bound wallet) earn."""
    wallets_per_person: int | None = None
    """Most distinct wallets of one person that earn in a UTC day; None: no limit."""
    k_anonymity: int = DEFAULT_K_ANONYMITY
    """Fewest distinct devices a zone statistic (a window, or one value of it) is published over."""
    hash: str = ""
    """sha256 hex of the JCS bytes of the document: the name a reward gives its policy."""
    document: Mapping[str, Any] | None = None
    """The policy document as validated (JSON), which the ledger keeps on the chain."""

    def rule_amount(self, kind: str, rule: str, values: Mapping[str, float]) -> int | None:
        """What `rule` pays, before caps, for a reading of `kind` with `values`; None if the policy has no
        such rule for that kind."""
        spec = self.kinds.get(kind)
        if spec is None or rule not in (spec.data_rule, spec.behaviour_rule):
            return None
        return dict(self.amounts(spec, values)).get(rule, 0)

    def max_rule_amount(self, kind: str, rule: str) -> int | None:
        """The most `rule` pays, before caps, for any reading of `kind` within the policy's bounds (every value
        at its highest): what the public can check a reward against without seeing its values. None if the
        policy has no such rule for that kind."""
        spec = self.kinds.get(kind)
        if spec is None or rule not in (spec.data_rule, spec.behaviour_rule):
            return None
        highest = {name: bounds.high for name, bounds in spec.bounds.items()}
        return dict(self.amounts(spec, highest)).get(rule, 0)

    def amounts(self, kind: KindPolicy, values: Mapping[str, float]) -> list[tuple[str, int]]:
        """The (rule, micro-CITY) each rule of `kind` pays for `values`, before caps; zero amounts left out."""
        earned = []
        if kind.data_reward:
            earned.append((kind.data_rule, kind.data_reward))
        if kind.behaviour:
            # Fraction(str(x)) is the decimal as written: no binary float rounding in the money.
            kg = sum(
                (
                    Fraction(str(values[name])) * factor.kg_co2e_per_unit
                    for name, factor in kind.behaviour.items()
                    if name in values
                ),
                Fraction(0),
            )
            amount = min(math.floor(kg * self.micro_city_per_kg_co2e), MAX_MICRO_UNITS)
            if amount > 0:
                earned.append((kind.behaviour_rule, amount))
        return earned


def parse_policy(document: Any, origin: str = "policy") -> Policy:
    """Build a `Policy` from a decoded policy document; raises `PolicyError` naming `origin` and the field."""
    try:
        schemas.validate_against(POLICY_SCHEMA, document)
    except schemas.SchemaError as exc:
        raise PolicyError(f"{origin} does not fit {POLICY_SCHEMA}: {exc}") from exc
    quality = document["quality"]
    kinds = {}
    for name, spec in document["kinds"].items():
        override = spec.get("quality", {})
        bounds = {
            value: Bounds(float(b["min"]), float(b["max"]), b.get("required", True))
            for value, b in spec["values"].items()
        }
        for value, b in bounds.items():
            if b.low > b.high:
                raise PolicyError(f"{origin}: kinds/{name}/values/{value}: min {b.low} is above max {b.high}")
        factors = spec.get("behaviour", {}).get("factors", {})
        for value in factors:
            if value not in bounds:
                raise PolicyError(
                    f"{origin}: kinds/{name}/behaviour/factors: {value!r} is not one of the kind's values"
                )
        behaviour = {
            value: Factor(Fraction(str(f["kg_co2e_per_unit"])), f["source"]) for value, f in factors.items()
        }
        kinds[name] = KindPolicy(
            kind=name,
            data_reward=spec.get("data_reward", 0),
            bounds=bounds,
            behaviour=behaviour,
            stuck_repeats=override.get("stuck_repeats", quality["stuck_repeats"]),
            burst=Burst(**override.get("burst", quality["burst"])),
            outlier=Outlier(**override.get("outlier", quality["outlier"])),
            late_s=override.get("late_s", quality.get("late_s", DEFAULT_LATE_S)),
            attested_by=tuple(spec.get("attested_by", ())),
        )
    try:
        digest = signing.sha256_hex(signing.canonical_bytes(document))
    except signing.SignatureError as exc:
        raise PolicyError(f"{origin} has no canonical JSON form: {exc}") from exc
    return Policy(
        version=document["version"],
        device_per_hour=document["caps"]["device_per_hour"],
        wallet_per_day=document["caps"]["wallet_per_day"],
        person_per_day=document["caps"].get("person_per_day"),
        binding_required=document.get("people", {}).get("binding_required", False),
        wallets_per_person=document.get("people", {}).get("wallets_per_person"),
        k_anonymity=document.get("privacy", {}).get("k_anonymity", DEFAULT_K_ANONYMITY),
        micro_city_per_kg_co2e=document["behaviour"]["micro_city_per_kg_co2e"],
        kinds=kinds,
        hash=digest,
        document=document,
    )


def load_policy(path: Path) -> Policy:
    """Read and validate the policy file at `path`; raises `PolicyError` with the file and the reason."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read the policy file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path} is not valid YAML: {exc}") from exc
    return parse_policy(document, str(path))
