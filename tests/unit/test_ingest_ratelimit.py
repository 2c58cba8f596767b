"""The per-device token bucket."""

from services.ingest.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2, burst=3, clock=clock)
    assert [limiter.take("d") for _ in range(4)] == [True, True, True, False]
    assert limiter.take("other")  # each device has its own bucket
    assert limiter.retry_after_s("d") == 1
    clock.now += 0.5  # one token back
    assert limiter.take("d") and not limiter.take("d")
    clock.now += 60  # never more than the burst
    assert [limiter.take("d") for _ in range(4)] == [True, True, True, False]


def test_retry_after_is_whole_seconds_until_a_token():
    clock = Clock()
    limiter = RateLimiter(rate_per_s=0.1, burst=1, clock=clock)
    assert limiter.take("d") and not limiter.take("d")
    assert limiter.retry_after_s("d") == 10
    clock.now += 9.5
    assert limiter.retry_after_s("d") == 1
