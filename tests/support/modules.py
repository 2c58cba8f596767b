"""A probe run in worker processes: which modules a process has imported (it imports none itself)."""

from __future__ import annotations

import sys


def imported(names: list[str]) -> list[bool]:
    """For each module name, whether this process has imported it."""
    return [name in sys.modules for name in names]
