"""The supervisor of `smartcity up`: a service that exits is started again in its place, with a backoff that
grows while it keeps exiting soon after a start."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from services.stack import supervisor as supervision
from services.stack.supervisor import RESTART_BACKOFF_S, Supervisor


def test_an_exited_child_restarts_in_its_place_with_a_growing_backoff(tmp_path: Path) -> None:
    keeper = Supervisor(tmp_path)
    sleeper = keeper.start("sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], {})
    crasher = keeper.start("crasher", [sys.executable, "-c", "import sys; sys.exit(3)"], {"X": "1"})
    last = keeper.start("last", [sys.executable, "-c", "import time; time.sleep(60)"], {})
    try:
        crasher.process.wait(10)
        assert keeper.exited() == [crasher] and crasher.process.returncode == 3
        waits = []
        for _ in range(len(RESTART_BACKOFF_S) + 1):
            dead = keeper.exited()[0]
            waits.append(dead.backoff_s(time.monotonic()))
            again = keeper.restart(dead)
            again.process.wait(10)
        assert waits == [*RESTART_BACKOFF_S, RESTART_BACKOFF_S[-1]]
        assert [c.name for c in keeper.children] == ["sleeper", "crasher", "last"]  # stops stay in order
        assert (again.env, again.restarts) == ({"X": "1"}, len(RESTART_BACKOFF_S) + 1)
        # Up for longer than STABLE_S: its next exit waits the first step again.
        again.started_at -= supervision.STABLE_S
        assert again.backoff_s(time.monotonic()) == RESTART_BACKOFF_S[0]
    finally:
        keeper.stop_all(grace_s=5)
    assert not sleeper.alive() and not last.alive()
