"""Garbage-collector settings for a service process's hot loop (each service's entry point applies them).

A service allocates a few dozen short-lived objects per record (decoded JSON, records, futures) and keeps a
large, long-lived state (decisions, windows, caches). With CPython's default thresholds the young generation
is collected every 700 allocations and the old ones keep re-scanning that state: measured, a quarter of the
ledger process's CPU per reward and a tenth of the rewards worker's per reading (``make bench``).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
"""Net allocations between young-generation collections (CPython's default is 700)."""
OLDER_THRESHOLDS = (20, 20)
"""Collections of each generation between collections of the next (defaults 10, 10)."""


def tune_for_throughput() -> None:
    """Move everything start-up built (modules, the app) out of the collector's sight (`gc.freeze`) and
    collect the young generation less often. Call once per process, after building the app: objects
    frozen are never scanned again, so frozen garbage cycles would stay (start-up leaves none worth it)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
