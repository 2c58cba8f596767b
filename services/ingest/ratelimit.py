"""The per-device rate limit's rules: a token bucket per device (pure: each rule takes the time, which the
caller reads from the limit's clock, injectable for tests).

The buckets are shared by every ingest instance. A device's bucket lives in its ``device_sequences`` row,
which each batch already locks for the sequence check (services/ingest/sequences.py): the pipeline computes
the bucket from the locked row with these rules and stores it in the same UPDATE that advances the device's
sequence number. So N instances behind a balancer, or sharing the MQTT subscription, still let a device send
`burst` readings at once and `rate_per_s` after, not N times that (as when each instance kept its buckets in
memory); and as that UPDATE commits only once the broker acknowledged the batch, a batch that was not
published spends no token.

The clock is the wall clock, since one instance reads what another counted (a monotonic clock is per
process). A bucket's count never moves back in time: an instance whose clock is behind it refills nothing
until its clock catches up, so clock skew between instances can only make the limit stricter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    """A device's tokens as counted at `at` (epoch seconds)."""

    tokens: float
    at: float


class RateLimit:
    """Up to `burst` readings at once per device, refilled at `rate_per_s`."""

    def __init__(self, rate_per_s: float, burst: float, clock: Callable[[], float] = time.time) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clock = clock

    def refill(self, bucket: Bucket | None, now: float) -> Bucket:
        """`bucket` as it stands at `now`; a device never counted (None) has a full one."""
        if bucket is None:
            return Bucket(self.burst, now)
        elapsed = max(0.0, now - bucket.at)
        return Bucket(min(self.burst, bucket.tokens + elapsed * self.rate_per_s), max(now, bucket.at))

    def take(self, bucket: Bucket | None, now: float) -> Bucket | None:
        """`bucket` with one token spent at `now`; None if it holds less than one (nothing is spent)."""
        level = self.refill(bucket, now)
        return Bucket(level.tokens - 1, level.at) if level.tokens >= 1 else None

    def retry_after_s(self, bucket: Bucket | None, now: float) -> int:
        """Whole seconds from `now` until `bucket` holds a token again (at least 1)."""
        level = self.refill(bucket, now)
        return max(1, math.ceil(level.at - now + (1 - level.tokens) / self.rate_per_s))
