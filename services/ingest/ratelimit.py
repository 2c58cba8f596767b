"""A per-device rate limit (pure; the clock is injectable for tests): a token bucket per device.

Each ingest instance keeps its own buckets, so with N instances behind a balancer a device may send up to
N times the rate; the sequence check still refuses every replay whichever instance it reaches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    """Up to `burst` readings at once per device, refilled at `rate_per_s`."""

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        # device -> (tokens, when counted). Only registered devices get here, so it is bounded by them.
        self._buckets: dict[str, tuple[float, float]] = {}

    def _tokens(self, device_id: str, now: float) -> float:
        tokens, at = self._buckets.get(device_id, (self.burst, now))
        return min(self.burst, tokens + (now - at) * self.rate_per_s)

    def take(self, device_id: str) -> bool:
        """Spend one token of the device's bucket; False (and nothing spent) if it is empty."""
        now = self._clock()
        tokens = self._tokens(device_id, now)
        if tokens < 1:
            self._buckets[device_id] = (tokens, now)
            return False
        self._buckets[device_id] = (tokens - 1, now)
        return True

    def retry_after_s(self, device_id: str) -> int:
        """Whole seconds until the device may send one reading again (at least 1)."""
        missing = 1 - self._tokens(device_id, self._clock())
        return max(1, math.ceil(missing / self.rate_per_s))
