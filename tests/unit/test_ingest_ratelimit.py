"""The per-device token bucket's rules (pure: each takes the time)."""

import time

from services.ingest.ratelimit import Bucket, RateLimit


def _spend(
    limit: RateLimit, bucket: Bucket | None, now: float, count: int
) -> tuple[list[bool], Bucket | None]:
    """Whether each of `count` readings sent at `now` gets a token, and the bucket after them."""
    taken = []
    for _ in range(count):
        after = limit.take(bucket, now)
        taken.append(after is not None)
        bucket = after or bucket
    return taken, bucket


def test_a_burst_then_the_rate():
    limit = RateLimit(rate_per_s=2, burst=3)
    taken, bucket = _spend(limit, None, 100.0, 4)  # a device never counted has a full bucket
    assert taken == [True, True, True, False]
    assert limit.retry_after_s(bucket, 100.0) == 1
    taken, bucket = _spend(limit, bucket, 100.5, 2)  # one token back
    assert taken == [True, False]
    taken, _ = _spend(limit, bucket, 160.5, 4)  # never more than the burst
    assert taken == [True, True, True, False]


def test_an_empty_bucket_spends_nothing():
    limit = RateLimit(rate_per_s=1, burst=1)
    bucket = limit.take(None, 100.0)
    assert bucket == Bucket(0.0, 100.0)
    assert limit.take(bucket, 100.5) is None  # half a token is not one, and is not lost either
    assert limit.take(bucket, 101.0) == Bucket(0.0, 101.0)


def test_retry_after_is_whole_seconds_until_a_token():
    limit = RateLimit(rate_per_s=0.1, burst=1)
    bucket = limit.take(None, 100.0)
    assert limit.take(bucket, 100.0) is None
    assert limit.retry_after_s(bucket, 100.0) == 10
    assert limit.retry_after_s(bucket, 109.5) == 1


def test_a_clock_behind_the_count_refills_nothing():
    limit = RateLimit(rate_per_s=1, burst=2)
    bucket = Bucket(0.0, 100.0)  # counted by an instance whose clock is 5 s ahead of this one's
    assert limit.refill(bucket, 95.0) == bucket  # the count never moves back in time
    assert limit.take(bucket, 95.0) is None
    assert limit.retry_after_s(bucket, 95.0) == 6
    assert limit.refill(bucket, 101.0) == Bucket(1.0, 101.0)


def test_the_clock_is_the_wall_clock_unless_injected():
    # Every instance reads the buckets the others counted: a monotonic clock is per process.
    assert RateLimit(1, 1).clock is time.time
    assert RateLimit(1, 1, clock=lambda: 42.0).clock() == 42.0
