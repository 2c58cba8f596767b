"""Opening hours (pure): a weekly schedule in the city's local time, as minute-of-week ranges.

A schedule maps day names to intervals ``"HH:MM-HH:MM"`` in the city's time zone (the city's wall clock, so a
shop opening at 09:00 opens at 09:00 in summer and winter alike). An interval whose end is not after its start
runs past midnight into the next day (``"22:00-02:00"``); ``"00:00-24:00"`` is the whole day. The database
holds
the schedule as a multirange of minutes since Monday 00:00 (0..10080), so "open now" is one containment test
against the current minute of the week.
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MAX_INTERVALS_PER_DAY = 4

_INTERVAL = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]|24):([0-5][0-9])$")

Schedule = dict[str, list[str]]
"""Day name -> intervals ``"HH:MM-HH:MM"`` in the city's local time."""


def parse_interval(text: str) -> tuple[int, int]:
    """Start and end of an interval in minutes since midnight; the end may pass midnight (up to 48 h).

    Raises ValueError naming what is wrong.
    """
    match = _INTERVAL.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an interval HH:MM-HH:MM")
    start = int(match[1]) * 60 + int(match[2])
    end = int(match[3]) * 60 + int(match[4])
    if end > MINUTES_PER_DAY:
        raise ValueError(f"{text!r} ends after 24:00")
    if end <= start:
        end += MINUTES_PER_DAY  # past midnight, into the next day
    return start, end


def check_schedule(schedule: Schedule) -> Schedule:
    """`schedule` if it is well formed (known days, at most a few valid intervals a day); else ValueError."""
    for day, intervals in schedule.items():
        if day not in DAYS:
            raise ValueError(f"unknown day {day!r}; days are {', '.join(DAYS)}")
        if len(intervals) > MAX_INTERVALS_PER_DAY:
            raise ValueError(f"{day}: at most {MAX_INTERVALS_PER_DAY} intervals")
        for interval in intervals:
            parse_interval(interval)
    return schedule


def week_ranges(schedule: Schedule) -> list[tuple[int, int]]:
    """The schedule as sorted, merged, half-open minute-of-week ranges within [0, 10080).

    Sunday's intervals past midnight wrap around to Monday morning.
    """
    pieces: list[tuple[int, int]] = []
    for day, intervals in schedule.items():
        offset = DAYS.index(day) * MINUTES_PER_DAY
        for interval in intervals:
            start, end = parse_interval(interval)
            start, end = start + offset, end + offset
            if end > MINUTES_PER_WEEK:
                pieces.append((0, end - MINUTES_PER_WEEK))
                end = MINUTES_PER_WEEK
            pieces.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def minute_of_week(moment: datetime, timezone: ZoneInfo) -> int:
    """Minutes since Monday 00:00 of the city's wall clock at `moment` (an aware datetime)."""
    local = moment.astimezone(timezone)
    return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute


def is_open(ranges: list[tuple[int, int]], minute: int) -> bool:
    """Whether `minute` of the week falls in one of the half-open `ranges`."""
    return any(start <= minute < end for start, end in ranges)
