"""Whether a consumer still moves, and what a process does when one does not.

A consumer that has stopped, or holds records it has not committed for longer than the stall bound, makes
its service's ``/readyz`` fail; the process entry points (`exit_when_stuck`) then also exit non-zero, so
the supervisor (``smartcity up``) or Kubernetes starts it again. Every consumer is at-least-once with
idempotent effects, so a restart loses nothing.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

EXIT_STUCK = 70
"""The exit status of a process that stopped itself because a consumer was stuck (EX_SOFTWARE)."""
HARD_EXIT_AFTER_S = 30.0
"""How long a stuck process gets to shut down gracefully before it is ended at once."""


class Progress:
    """A consumer's progress: records taken in and not yet committed, and since when nothing moved."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self.in_hand = 0
        self._since = clock()
        self.stopped: BaseException | str | None = None

    def took(self, count: int) -> None:
        """`count` records were taken in (polled) and are not committed yet."""
        if count and not self.in_hand:
            self._since = self._clock()
        self.in_hand += count

    def committed(self, count: int | None = None) -> None:
        """`count` of the records in hand are committed (all of them with None)."""
        self.in_hand = 0 if count is None else max(0, self.in_hand - count)
        self._since = self._clock()

    def stop(self, reason: BaseException | str) -> None:
        """The consumer has stopped for good (`reason`)."""
        self.stopped = reason

    def stuck(self, max_s: float) -> str | None:
        """Why the consumer is stuck, or None: it stopped, or committed nothing for `max_s` while holding records."""
        if self.stopped is not None:
            return f"{self.name} stopped: {self.stopped!r}"
        idle_s = self._clock() - self._since
        if self.in_hand and idle_s > max_s:
            return f"{self.name} has {self.in_hand} records in hand and committed nothing for {idle_s:.0f}s"
        return None


def stuck(progresses: Iterable[Progress], max_s: float) -> list[str]:
    """Why any of `progresses` is stuck (empty when every one moves)."""
    return [reason for p in progresses if (reason := p.stuck(max_s)) is not None]


_exit_code: int | None = None
_stop_process: Callable[[], None] | None = None


def _terminate_self() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


def exit_when_stuck(stop: Callable[[], None] = _terminate_self) -> None:
    """Make `report_stuck` end this process, through `stop` (which begins a graceful shutdown; SIGTERM to
    itself by default). Called by the process entry points, never by an app built in a test process."""
    global _stop_process
    _stop_process = stop


def report_stuck(reasons: list[str]) -> None:
    """Log why the service is stuck and, if `exit_when_stuck` was called, stop the process gracefully with
    `EXIT_STUCK` as its status, or at once if it has not stopped within `HARD_EXIT_AFTER_S`."""
    global _exit_code
    if not reasons or _exit_code is not None:
        return
    if _stop_process is not None:
        _exit_code = EXIT_STUCK
        # Armed first: even a process whose logging blocks (a full pipe) is ended.
        timer = threading.Timer(HARD_EXIT_AFTER_S, os._exit, args=(EXIT_STUCK,))
        timer.daemon = True
        timer.start()
    log.error("stuck: %s", "; ".join(reasons))
    if _stop_process is None:
        return
    log.error("exiting with status %d so that the service is started again", EXIT_STUCK)
    _stop_process()


def exit_code() -> int:
    """The status the process should exit with: `EXIT_STUCK` after `report_stuck` stopped it, else 0."""
    return _exit_code or 0
