"""A small in-memory cache whose entries expire (pure; the clock is injectable for tests)."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Entries live `ttl_s` seconds; past `max_size` entries, the expired and then the oldest are dropped."""

    def __init__(self, ttl_s: float, max_size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_size = max_size
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        """The cached value, or None if it is missing or expired."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires <= self._clock():
            del self._entries[key]
            return None
        return value

    def pop(self, key: K) -> None:
        """Forget `key` (when its value changed)."""
        self._entries.pop(key, None)

    def put(self, key: K, value: V) -> None:
        if self.ttl_s <= 0:
            return
        now = self._clock()
        self._entries.pop(key, None)  # re-inserting moves the key to the young end
        if len(self._entries) >= self.max_size:
            self._evict(now)
        self._entries[key] = (now + self.ttl_s, value)

    def _evict(self, now: float) -> None:
        self._entries = {k: e for k, e in self._entries.items() if e[0] > now}
        # Dicts keep insertion order, so the first keys are the oldest.
        for key in list(self._entries)[: max(0, len(self._entries) - self.max_size + 1)]:
            del self._entries[key]
