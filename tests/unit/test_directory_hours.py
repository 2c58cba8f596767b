"""Opening hours: intervals, the week's minute ranges, and the city's wall clock."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from services.directory import hours

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
DAY = hours.MINUTES_PER_DAY


def test_an_interval_in_minutes_and_past_midnight():
    assert hours.parse_interval("08:30-17:00") == (510, 1020)
    assert hours.parse_interval("22:00-02:00") == (1320, DAY + 120)
    assert hours.parse_interval("00:00-24:00") == (0, DAY)
    assert hours.parse_interval("00:00-00:00") == (0, DAY)


@pytest.mark.parametrize(
    "text", ["8:00-17:00", "08:00-25:00", "08:00-24:30", "08:60-09:00", "08:00", "", None]
)
def test_malformed_intervals_are_refused(text):
    with pytest.raises(ValueError):
        hours.parse_interval(text)


def test_a_schedule_names_known_days_and_few_intervals():
    assert hours.check_schedule({"mon": ["09:00-12:00"], "sun": []}) == {"mon": ["09:00-12:00"], "sun": []}
    with pytest.raises(ValueError, match="unknown day"):
        hours.check_schedule({"monday": ["09:00-12:00"]})
    with pytest.raises(ValueError, match="at most"):
        hours.check_schedule({"mon": ["01:00-02:00"] * 5})


def test_week_ranges_merge_and_wrap_sunday_night_into_monday():
    schedule = {"mon": ["09:00-12:00", "11:00-13:00"], "sun": ["22:00-03:00"], "tue": ["00:00-24:00"]}
    assert hours.week_ranges(schedule) == [
        (0, 180),  # Sunday night's end, Monday 00:00-03:00
        (540, 780),  # Monday 09:00-13:00, overlaps merged
        (DAY, 2 * DAY),
        (6 * DAY + 1320, 7 * DAY),
    ]
    assert hours.week_ranges({"mon": ["18:00-24:00"], "tue": ["00:00-02:00"]}) == [(1080, DAY + 120)]


def test_the_minute_of_the_week_is_the_citys_wall_clock():
    # Friday 2026-11-20 11:00 UTC is 12:00 in Amsterdam (UTC+1 in winter); 2026-07-03 11:00 UTC is 13:00.
    assert hours.minute_of_week(datetime(2026, 11, 20, 11, 0, tzinfo=UTC), AMSTERDAM) == 4 * DAY + 720
    assert hours.minute_of_week(datetime(2026, 7, 3, 11, 0, tzinfo=UTC), AMSTERDAM) == 4 * DAY + 780
    assert hours.minute_of_week(datetime(2026, 11, 22, 23, 30, tzinfo=UTC), AMSTERDAM) == 30  # Monday 00:30


def test_is_open_uses_half_open_ranges():
    ranges = hours.week_ranges({"mon": ["09:00-17:00"]})
    assert hours.is_open(ranges, 540) and hours.is_open(ranges, 1019)
    assert not hours.is_open(ranges, 1020) and not hours.is_open(ranges, 539)
    assert not hours.is_open([], 600)
