"""The service processes' garbage-collector settings, applied in a process of their own."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO_ROOT

PROBE = """
import gc
from services.common.gc_tuning import OLDER_THRESHOLDS, YOUNG_THRESHOLD, tune_for_throughput
built = [object() for _ in range(10)]
tune_for_throughput()
assert gc.get_threshold() == (YOUNG_THRESHOLD, *OLDER_THRESHOLDS), gc.get_threshold()
assert gc.get_freeze_count() > 0
print("ok")
"""


def test_start_up_objects_are_frozen_and_young_collections_rarer() -> None:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert probe.stdout.strip() == "ok", probe.stderr
