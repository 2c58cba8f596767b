"""The impact page's fold of the zone statistics (pure): each shown window counted once, suppressed windows
carrying nothing, a bounded memory behind each zone's newest window, and the figures (trips, kWh, kg, kg CO2e)
under the city's own policy. Windows are made by the rewards worker's own `ZoneWindow.summary`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.common import schemas
from services.common.months import last_months, month_of, month_start
from services.common.policy import load_policy
from services.common.topics import ZONE_STATS
from services.portal.impact import (
    COUNTED,
    DUPLICATE,
    SUPPRESSED,
    TOO_OLD,
    EmissionFactors,
    ZoneStatsFold,
    zone_impact,
)
from services.rewards.engine import ZoneWindow

CITY_POLICY = load_policy(Path(__file__).resolve().parents[2] / "services/rewards/policies/city.yaml")
MAY = int(datetime(2026, 5, 10, 8, 0, tzinfo=UTC).timestamp())
HOUR = 3600


def window(
    zone: str,
    kind: str,
    start: int,
    readings: list[Mapping[str, float]],
    devices: int | None = None,
    k: int = 5,
) -> dict[str, Any]:
    """The city.zone-stats.v1 value the rewards worker publishes for `readings` from `devices` devices (one
    device a reading unless fewer are given)."""
    built = ZoneWindow(zone, kind, start)
    for i, values in enumerate(readings):
        built.add(values, 0.0, f"device-{i % (devices or len(readings))}", k)
    summary = built.summary()
    schemas.validate(ZONE_STATS, summary)
    return summary


def trips(zone: str, start: int, km: list[float], kind: str = "bike_trip") -> dict[str, Any]:
    return window(zone, kind, start, [{"km": v} for v in km])


def test_a_shown_window_is_counted_into_its_zone_month_and_kind() -> None:
    fold = ZoneStatsFold()
    assert fold.add(trips("harbour", MAY, [1.0, 2.0, 3.0, 4.0, 5.5])) == COUNTED
    sums = fold.sums[("harbour", "2026-05", "bike_trip")]
    assert (sums.windows, sums.readings) == (1, 5)
    assert sums.values["km"] == pytest.approx(15.5)
    assert fold.k == 5 and fold.newest_end == MAY - MAY % 60 + 60


def test_a_suppressed_window_counts_nothing_and_its_later_shown_publication_counts() -> None:
    fold = ZoneStatsFold()
    few = trips("harbour", MAY, [1.0, 2.0, 3.0])  # three devices: fewer than k
    assert few["suppressed"] is True and "count" not in few
    assert fold.add(few) == SUPPRESSED
    assert fold.sums == {}
    # Late readings brought it to k devices: published again, shown, and counted.
    assert fold.add(trips("harbour", MAY, [1.0, 2.0, 3.0, 4.0, 5.0])) == COUNTED
    assert fold.sums[("harbour", "2026-05", "bike_trip")].readings == 5
    assert fold.outcomes == {COUNTED: 1, DUPLICATE: 0, SUPPRESSED: 1, TOO_OLD: 0}


def test_a_window_published_again_counts_once_whatever_it_holds_the_second_time() -> None:
    fold = ZoneStatsFold()
    first = trips("harbour", MAY, [1.0] * 5)
    assert fold.add(first) == COUNTED
    # A rewards restart rebuilt the window and published it again, with a late reading in it: the first stands.
    assert fold.add(trips("harbour", MAY, [1.0] * 6)) == DUPLICATE
    assert fold.add(first) == DUPLICATE
    # The same minute of another kind, or of another zone, is another window.
    assert fold.add(trips("harbour", MAY, [1.0] * 5, kind="walk_trip")) == COUNTED
    assert fold.add(trips("old-town", MAY, [1.0] * 5)) == COUNTED
    assert fold.sums[("harbour", "2026-05", "bike_trip")].readings == 5
    assert fold.outcomes[DUPLICATE] == 2


def test_memory_is_bounded_by_the_horizon_behind_each_zones_newest_window() -> None:
    fold = ZoneStatsFold(horizon_s=48 * HOUR)
    old = trips("harbour", MAY, [1.0] * 5)
    assert fold.add(old) == COUNTED
    for hour in range(1, 60):  # an hour's window a hour for 59 hours
        assert fold.add(trips("harbour", MAY + hour * HOUR, [1.0] * 5)) == COUNTED
    newest = MAY + 59 * HOUR
    # Only the windows within 48 h of the newest are remembered; an older one can no longer be told from a new
    # one, so it is ignored, whether it was counted (`old`) or never seen.
    assert fold.remembered() == 48
    assert fold.add(old) == TOO_OLD
    assert fold.add(trips("harbour", newest - 48 * HOUR, [2.0] * 5)) == TOO_OLD
    # Within the horizon, a window published again is still a duplicate, a new one still counts.
    assert fold.add(trips("harbour", newest - 47 * HOUR, [1.0] * 5)) == DUPLICATE
    assert fold.add(trips("harbour", newest - 47 * HOUR + 60, [1.0] * 5)) == COUNTED
    assert fold.sums[("harbour", "2026-05", "bike_trip")].windows == 61


def test_each_zone_has_its_own_horizon_since_partitions_are_read_at_their_own_pace() -> None:
    fold = ZoneStatsFold(horizon_s=48 * HOUR)
    assert fold.add(trips("harbour", MAY + 100 * HOUR, [1.0] * 5)) == COUNTED
    # Another zone's windows (another partition) may be read days behind: they are not too old.
    assert fold.add(trips("old-town", MAY, [1.0] * 5)) == COUNTED


def test_figures_per_zone_and_month_under_the_policy_factors() -> None:
    fold = ZoneStatsFold()
    june = int(datetime(2026, 6, 2, tzinfo=UTC).timestamp())
    fold.add(trips("harbour", MAY, [2.0, 4.0, 6.0, 8.0, 10.0]))  # 30 km cycled
    fold.add(trips("harbour", MAY + 60, [1.0, 1.0, 1.0, 1.0, 1.0], kind="walk_trip"))  # 5 km walked
    fold.add(window("harbour", "transit_checkin", MAY, [{"passengers": 1}] * 6))
    fold.add(window("harbour", "energy_saved", MAY, [{"kwh": 2.0}] * 5))
    # Glass from five devices is shown; the one device's paper is not (fewer than k measured it).
    fold.add(window("harbour", "recycling_dropoff", MAY, [{"glass": 3.0}] * 5 + [{"paper": 9.0}], devices=6))
    fold.add(window("harbour", "noise", MAY, [{"db_a": 60.0}] * 7))
    fold.add(trips("old-town", june, [1.0] * 5))
    fold.add(
        trips("old-town", int(datetime(2025, 12, 31, tzinfo=UTC).timestamp()), [1.0] * 5)
    )  # not asked for

    impact = zone_impact(
        fold, ["2026-04", "2026-05", "2026-06"], EmissionFactors.of(CITY_POLICY), caught_up=True
    )

    factor = {(f.kind, f.value): f.kg_co2e_per_unit for f in impact.policy.factors}
    assert impact.policy.version == CITY_POLICY.version and impact.policy.hash == CITY_POLICY.hash
    assert all(f.source for f in impact.policy.factors)
    assert {(f.kind, f.value): f.unit for f in impact.policy.factors}["energy_saved", "kwh"] == "kWh"
    harbour = impact.zones[0]
    assert (harbour.zone, harbour.month) == ("harbour", "2026-05")
    assert (harbour.bike_trips, harbour.walk_trips, harbour.transit_trips) == (5, 5, 6)
    assert (harbour.km_cycled, harbour.km_walked, harbour.kwh_saved, harbour.kg_recycled) == (30, 5, 10, 15)
    assert harbour.readings == 5 + 5 + 6 + 5 + 6 + 7
    assert harbour.kg_co2e_avoided == pytest.approx(
        30 * factor["bike_trip", "km"]
        + 5 * factor["walk_trip", "km"]
        + 10 * factor["energy_saved", "kwh"]
        + 15 * factor["recycling_dropoff", "glass"],
        abs=1e-3,
    )
    assert [(z.zone, z.month) for z in impact.zones] == [("harbour", "2026-05"), ("old-town", "2026-06")]
    assert [m.month for m in impact.by_month] == impact.months == ["2026-04", "2026-05", "2026-06"]
    assert impact.by_month[0].readings == 0 and impact.by_month[2].bike_trips == 5
    assert impact.totals.bike_trips == 10 and impact.totals.readings == harbour.readings + 5
    assert impact.k_anonymity == 5 and impact.caught_up


def test_without_a_known_policy_there_is_no_kg_co2e() -> None:
    fold = ZoneStatsFold()
    fold.add(trips("harbour", MAY, [1.0] * 5))
    impact = zone_impact(fold, ["2026-05"], None, caught_up=False)
    assert impact.policy is None and impact.totals.kg_co2e_avoided is None
    assert impact.totals.bike_trips == 5 and not impact.caught_up


def test_the_months_of_a_report_cross_a_year_in_utc() -> None:
    assert last_months(datetime(2026, 2, 10, tzinfo=UTC), 3) == ["2025-12", "2026-01", "2026-02"]
    assert month_of(datetime.fromisoformat("2026-03-01T00:30:00+01:00")) == "2026-02"
    assert month_start("2026-02") == datetime(2026, 2, 1, tzinfo=UTC)
