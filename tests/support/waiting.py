"""Waiting for an effect in integration tests: a deadline on the test, not a timing assertion."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 45.0


async def until(probe: Callable[[], Awaitable[T | None]], what: str, deadline_s: float = DEADLINE_S) -> T:
    """Poll `probe` until it returns something truthy, and return that; fail naming `what` at the deadline."""
    deadline = time.monotonic() + deadline_s
    while not (value := await probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.1)
    return value


def holds(predicate: Callable[[], T]) -> Callable[[], Awaitable[T]]:
    """An `until` probe of a condition that needs no awaiting."""

    async def probe() -> T:
        return predicate()

    return probe
