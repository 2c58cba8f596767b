"""Times as the platform writes them: RFC 3339 in UTC, milliseconds, ``Z`` (``2026-11-21T10:00:00.123Z``)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with millisecond precision and a ``Z``."""
    return rfc3339(datetime.now(UTC))


def rfc3339(moment: datetime) -> str:
    """An aware datetime in UTC as RFC 3339 with millisecond precision and a ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
