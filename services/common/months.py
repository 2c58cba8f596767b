"""Calendar months (UTC) as public reports name them: ``YYYY-MM`` (pure).

The portal's zone impact and the ledger's circulation report the same months, so a page can put the two side by
side; both take the months from here.
"""

from __future__ import annotations

from datetime import UTC, datetime

MAX_REPORT_MONTHS = 24
"""The longest period a public monthly report covers (the page asks both services for the same months)."""


def month_of(when: datetime) -> str:
    """The UTC month of `when` (an aware datetime), as ``YYYY-MM``."""
    return when.astimezone(UTC).strftime("%Y-%m")


def last_months(now: datetime, count: int) -> list[str]:
    """The `count` UTC months up to and including `now`'s, oldest first, as ``YYYY-MM``."""
    current = _index(month_of(now))
    return [_key(index) for index in range(current - count + 1, current + 1)]


def month_start(month: str) -> datetime:
    """The first instant (UTC) of the month ``YYYY-MM``."""
    return datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)


def _index(month: str) -> int:
    year, number = month.split("-")
    return int(year) * 12 + int(number) - 1


def _key(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"
