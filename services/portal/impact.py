"""What the city's rewards bought, per zone and month, from the k-anonymous zone statistics alone (pure).

Per-zone figures may come only from ``city.zone-stats.v1`` (README "Privacy: who reads what"): per zone, kind and
minute, the count of readings that passed the quality checks and, per value, their count and mean, published
only over at least k distinct devices. `ZoneStatsFold` folds every window *shown* into sums per (zone, month,
kind): the windows, the readings (for bike_trip, walk_trip and transit_checkin: the trips), and per value the
sum of what was measured (count x mean: km, kWh, kg of each material). A suppressed window carries nothing and
is not counted; so a zone's minute with fewer than k devices, or a value fewer than k devices measured
(``suppressed_values``), is missing from the figures: they are lower bounds, the price of k-anonymity.

Windows come more than once: a window shown is final, but the rewards worker rebuilds its state from its
decisions after a restart (a day and an hour of them) and publishes its windows again, perhaps with readings
that came late. The first publication stands (the one the rewards worker calls final), and any other of the
same (zone, kind, window_start) is a duplicate. To stay bounded in memory, the fold remembers the windows it
counted only within `horizon_s` (48 h by default) behind the newest window of the zone, and ignores a window
older than that ("too-old"). So a window published again is never counted twice: either it is within the
horizon and remembered, or it is older and ignored. What the horizon costs is a window published for the
first time more than `horizon_s` behind its zone's newest one: readings reach the worker at most a day after
they were taken (the policy's ``quality.late_s``), so with 48 h none is lost. The newest is kept per zone
because a zone's windows share a partition (the key is the zone), so their order is the order the worker
published them in, while partitions are read at their own pace (a restarted portal may be days further in one
than in another).

kg CO2e avoided = each value's sum x its ``behaviour.factors.<value>.kg_co2e_per_unit`` in the reward policy
(`EmissionFactors`): the factors, and their sources, of the policy the figures name.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from services.common.events import rfc3339
from services.common.months import month_of
from services.common.openapi import examples
from services.common.policy import Policy

DEFAULT_HORIZON_S = 48 * 3600

TRIPS = {"bike_trip": "bike_trips", "walk_trip": "walk_trips", "transit_checkin": "transit_trips"}
"""The kinds whose readings are trips (schemas/kinds/), and the figure each counts in."""
DISTANCES = {("bike_trip", "km"): "km_cycled", ("walk_trip", "km"): "km_walked"}
ENERGY = ("energy_saved", "kwh")
RECYCLING = "recycling_dropoff"
"""Every value of a recycling drop-off is the kg of one material handed in (services/rewards/policies)."""

COUNTED, DUPLICATE, SUPPRESSED, TOO_OLD = "counted", "duplicate", "suppressed", "too-old"


@dataclass
class KindSums:
    """What the windows of one kind counted, summed."""

    windows: int = 0
    readings: int = 0
    values: dict[str, float] = field(default_factory=dict)
    """Per value, the sum of the readings' values (count x mean of each window)."""

    def merge(self, other: KindSums) -> None:
        self.windows += other.windows
        self.readings += other.readings
        for name, total in other.values.items():
            self.values[name] = self.values.get(name, 0.0) + total


@dataclass
class _ZoneMemory:
    """The windows of one zone counted within the horizon: kinds by window start, and the starts in a heap."""

    newest: int | None = None
    seen: dict[int, set[str]] = field(default_factory=dict)
    starts: list[int] = field(default_factory=list)


class ZoneStatsFold:
    """Sums of the zone windows shown, per (zone, month, kind), each window counted once (see the module)."""

    def __init__(self, horizon_s: int = DEFAULT_HORIZON_S) -> None:
        self.horizon_s = horizon_s
        self.sums: dict[tuple[str, str, str], KindSums] = {}
        self.outcomes: dict[str, int] = {COUNTED: 0, DUPLICATE: 0, SUPPRESSED: 0, TOO_OLD: 0}
        self.k: int | None = None
        """The k of the latest window: the fewest distinct devices a figure rests on."""
        self.newest_end: int | None = None
        """When the newest window counted ended (seconds since the epoch)."""
        self._zones: dict[str, _ZoneMemory] = {}

    def add(self, window: Mapping[str, Any]) -> str:
        """Fold one ``city.zone-stats.v1`` value (schema-valid) in; returns what became of it."""
        self.k = window["k"]
        if window["suppressed"]:
            # Nothing to count; the same window may come again, shown, once late readings reach k devices.
            return self._outcome(SUPPRESSED)
        zone, kind = window["zone"], window["kind"]
        start = int(datetime.fromisoformat(window["window_start"]).timestamp())
        memory = self._zones.setdefault(zone, _ZoneMemory())
        if memory.newest is not None and start <= memory.newest - self.horizon_s:
            return self._outcome(TOO_OLD)
        kinds = memory.seen.get(start)
        if kinds is None:
            kinds = memory.seen[start] = set()
            heapq.heappush(memory.starts, start)
        elif kind in kinds:
            return self._outcome(DUPLICATE)
        kinds.add(kind)
        if memory.newest is None or start > memory.newest:
            memory.newest = start
            while memory.starts[0] <= start - self.horizon_s:
                del memory.seen[heapq.heappop(memory.starts)]
        end = int(datetime.fromisoformat(window["window_end"]).timestamp())
        self.newest_end = end if self.newest_end is None else max(self.newest_end, end)
        sums = self.sums.setdefault((zone, month_of(datetime.fromtimestamp(start, UTC)), kind), KindSums())
        sums.windows += 1
        sums.readings += window["count"]
        for name, stats in window["values"].items():
            sums.values[name] = sums.values.get(name, 0.0) + stats["count"] * stats["mean"]
        return self._outcome(COUNTED)

    def remembered(self) -> int:
        """How many windows the fold remembers for its duplicate check (bounded by the horizon)."""
        return sum(len(kinds) for memory in self._zones.values() for kinds in memory.seen.values())

    def _outcome(self, outcome: str) -> str:
        self.outcomes[outcome] += 1
        return outcome


class Factor(BaseModel):
    kind: str
    value: str
    unit: str | None = Field(description="The value's unit, as the policy names it (km, kWh, kg).")
    kg_co2e_per_unit: float
    source: str


class PolicyUsed(BaseModel):
    """The reward policy whose emission factors the kg CO2e figures use."""

    version: str
    hash: str = Field(description="sha256 hex of the policy document, as the chain names it.")
    factors: list[Factor]


@dataclass(frozen=True)
class EmissionFactors:
    """kg CO2e avoided per unit of each (kind, value), from one policy."""

    policy: PolicyUsed

    @classmethod
    def of(cls, policy: Policy) -> EmissionFactors:
        document = policy.document or {}

        def unit(kind: str, value: str) -> str | None:
            return document.get("kinds", {}).get(kind, {}).get("values", {}).get(value, {}).get("unit")

        factors = [
            Factor(
                kind=kind,
                value=value,
                unit=unit(kind, value),
                kg_co2e_per_unit=float(f.kg_co2e_per_unit),
                source=f.source,
            )
            for kind, spec in sorted(policy.kinds.items())
            for value, f in sorted(spec.behaviour.items())
        ]
        return cls(PolicyUsed(version=policy.version, hash=policy.hash, factors=factors))

    def kg_co2e(self, kind: str, values: Mapping[str, float]) -> float:
        by_value = {f.value: f.kg_co2e_per_unit for f in self.policy.factors if f.kind == kind}
        return sum(total * by_value[name] for name, total in values.items() if name in by_value)


class Figures(BaseModel):
    kg_co2e_avoided: float | None = Field(description="null: no published policy known yet, so no factors.")
    kwh_saved: float
    kg_recycled: float
    km_cycled: float
    km_walked: float
    bike_trips: int
    walk_trips: int
    transit_trips: int = Field(description="Check-ins at transit gates.")
    readings: int = Field(description="Every reading counted in the windows shown, of every kind.")


class MonthFigures(Figures):
    month: str = Field(description="YYYY-MM (UTC), of the windows' start.")


class ZoneMonthFigures(MonthFigures):
    zone: str


class WindowOutcomes(BaseModel):
    counted: int
    duplicate: int
    suppressed: int
    too_old: int


EXAMPLE_FIGURES = {
    "kg_co2e_avoided": 1843.2,
    "kwh_saved": 2210.5,
    "kg_recycled": 932.0,
    "km_cycled": 7420.3,
    "km_walked": 3115.8,
    "bike_trips": 1288,
    "walk_trips": 904,
    "transit_trips": 5120,
    "readings": 48211,
}


class ZoneImpact(BaseModel):
    """``GET /v1/impact/zones``: the figures per zone and month, per month, and in all."""

    model_config = examples(
        {
            "months": ["2026-03"],
            "zones": [{"zone": "harbour", "month": "2026-03", **EXAMPLE_FIGURES}],
            "by_month": [{"month": "2026-03", **EXAMPLE_FIGURES}],
            "totals": EXAMPLE_FIGURES,
            "policy": {
                "version": "2026.12-3",
                "hash": "97b0497d7d76f3017450555cc9059671986415be1c59dc27eef228bbad205b95",
                "factors": [
                    {
                        "kind": "bike_trip",
                        "value": "km",
                        "unit": "km",
                        "kg_co2e_per_unit": 0.17,
                        "source": "EEA 2024, average car",
                    }
                ],
            },
            "k_anonymity": 5,
            "windows": {"counted": 7210, "duplicate": 12, "suppressed": 381, "too_old": 0},
            "caught_up": True,
            "newest_window_end": "2026-03-14T09:27:00Z",
        }
    )

    months: list[str] = Field(description="The months covered, oldest first (YYYY-MM, UTC).")
    zones: list[ZoneMonthFigures] = Field(description="One per zone and month with windows shown.")
    by_month: list[MonthFigures] = Field(description="Every month of the period, zones together.")
    totals: Figures
    policy: PolicyUsed | None
    k_anonymity: int | None = Field(description="The k of the latest window (fewest devices per figure).")
    windows: WindowOutcomes = Field(description="What became of every window read so far.")
    caught_up: bool = Field(description="Every window on the topic when the portal started is folded in.")
    newest_window_end: str | None


def figures(kinds: Mapping[str, KindSums], factors: EmissionFactors | None) -> dict[str, Any]:
    """The figures of one cell's sums by kind (the fields of `Figures`)."""
    out: dict[str, Any] = {
        "kg_co2e_avoided": None,
        "kwh_saved": 0.0,
        "kg_recycled": 0.0,
        "km_cycled": 0.0,
        "km_walked": 0.0,
        "bike_trips": 0,
        "walk_trips": 0,
        "transit_trips": 0,
        "readings": 0,
    }
    kg_co2e = 0.0
    for kind, sums in kinds.items():
        out["readings"] += sums.readings
        if kind in TRIPS:
            out[TRIPS[kind]] += sums.readings
        for name, total in sums.values.items():
            if (kind, name) in DISTANCES:
                out[DISTANCES[kind, name]] += total
        if kind == ENERGY[0]:
            out["kwh_saved"] += sums.values.get(ENERGY[1], 0.0)
        if kind == RECYCLING:
            out["kg_recycled"] += sum(sums.values.values())
        if factors is not None:
            kg_co2e += factors.kg_co2e(kind, sums.values)
    if factors is not None:
        out["kg_co2e_avoided"] = kg_co2e
    # Sums of float means: three decimals is more than the readings' own precision.
    return {name: round(value, 3) if isinstance(value, float) else value for name, value in out.items()}


def _merged(cells: Iterable[Mapping[str, KindSums]]) -> dict[str, KindSums]:
    merged: dict[str, KindSums] = {}
    for cell in cells:
        for kind, sums in cell.items():
            merged.setdefault(kind, KindSums()).merge(sums)
    return merged


def zone_impact(
    fold: ZoneStatsFold, months: list[str], factors: EmissionFactors | None, *, caught_up: bool
) -> ZoneImpact:
    """The answer for `months` (oldest first) from what `fold` summed."""
    period = set(months)
    cells: dict[tuple[str, str], dict[str, KindSums]] = {}
    for (zone, month, kind), kind_sums in fold.sums.items():
        if month in period:
            cells.setdefault((month, zone), {})[kind] = kind_sums
    zones = [
        ZoneMonthFigures(zone=zone, month=month, **figures(cell, factors))
        for (month, zone), cell in sorted(cells.items())
    ]
    by_month = [
        MonthFigures(
            month=month,
            **figures(_merged(cell for (m, _), cell in cells.items() if m == month), factors),
        )
        for month in months
    ]
    return ZoneImpact(
        months=months,
        zones=zones,
        by_month=by_month,
        totals=Figures(**figures(_merged(cells.values()), factors)),
        policy=None if factors is None else factors.policy,
        k_anonymity=fold.k,
        windows=WindowOutcomes(
            counted=fold.outcomes[COUNTED],
            duplicate=fold.outcomes[DUPLICATE],
            suppressed=fold.outcomes[SUPPRESSED],
            too_old=fold.outcomes[TOO_OLD],
        ),
        caught_up=caught_up,
        newest_window_end=None
        if fold.newest_end is None
        else rfc3339(datetime.fromtimestamp(fold.newest_end, UTC)),
    )
