"""The registration cache: entries expire, and it never grows past its size."""

from services.ingest.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(ttl_s=10, max_size=10, clock=clock)
    cache.put("a", 1)
    clock.now = 9.9
    assert cache.get("a") == 1
    clock.now = 10.0
    assert cache.get("a") is None
    assert len(cache) == 0


def test_the_oldest_entries_go_first_when_full():
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(ttl_s=100, max_size=3, clock=clock)
    for i, key in enumerate("abcd"):
        clock.now = i
        cache.put(key, i)
    assert len(cache) == 3
    assert cache.get("a") is None
    assert [cache.get(k) for k in "bcd"] == [1, 2, 3]


def test_expired_entries_are_dropped_before_live_ones():
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(ttl_s=5, max_size=2, clock=clock)
    cache.put("old", 0)
    clock.now = 4
    cache.put("live", 1)
    clock.now = 6  # "old" expired
    cache.put("new", 2)
    assert cache.get("live") == 1 and cache.get("new") == 2


def test_a_zero_ttl_caches_nothing():
    cache: TtlCache[str, int] = TtlCache(ttl_s=0, max_size=2)
    cache.put("a", 1)
    assert cache.get("a") is None
