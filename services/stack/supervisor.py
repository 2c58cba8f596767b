"""Start the platform's processes and stop every one of them, whatever happens."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.common.lifetime import die_with_parent

log = logging.getLogger(__name__)


RESTART_BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 15.0, 30.0)
"""Waits before restarting a service that exited: one step further each time it exits again soon after a start."""
STABLE_S = 60.0
"""A service up this long is healthy again: its next exit waits the first step of the backoff."""


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen
    log_path: Path
    argv: list[str] | None = None
    """How to start it again (None: a process the supervisor cannot restart, like the embedded broker)."""
    env: Mapping[str, str] | None = None
    started_at: float = 0.0
    restarts: int = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def backoff_s(self, now: float) -> float:
        """How long to wait before restarting it, now that it exited."""
        if now - self.started_at >= STABLE_S:
            return RESTART_BACKOFF_S[0]
        return RESTART_BACKOFF_S[min(self.restarts, len(RESTART_BACKOFF_S) - 1)]


class Supervisor:
    """Owns child processes: each in its own session (the terminal's Ctrl-C reaches only the
    supervisor, which then stops them in reverse order of start)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[ManagedProcess] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str], restarts: int = 0) -> ManagedProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        with log_path.open("ab") as out:
            process = subprocess.Popen(
                argv,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent,  # SIGTERM if the supervisor dies: none outlives it
            )
        child = ManagedProcess(name, process, log_path, list(argv), dict(env), time.monotonic(), restarts)
        self.children.append(child)
        log.info("started %s (pid %d), log %s", name, process.pid, log_path)
        return child

    def restart(self, child: ManagedProcess) -> ManagedProcess:
        """Start an exited child again, in its place in the start order (so stops stay in reverse order)."""
        if child.argv is None or child.env is None:
            raise ValueError(f"{child.name} cannot be restarted")
        index = self.children.index(child)
        self.children.remove(child)
        restarts = 0 if time.monotonic() - child.started_at >= STABLE_S else child.restarts + 1
        again = self.start(child.name, child.argv, child.env, restarts)
        self.children.remove(again)
        self.children.insert(index, again)
        return again

    def adopt(self, name: str, process: subprocess.Popen, log_path: Path) -> None:
        """Take charge of a process started elsewhere (the embedded broker)."""
        self.children.append(ManagedProcess(name, process, log_path))

    def exited(self) -> list[ManagedProcess]:
        return [c for c in self.children if not c.alive()]

    def stop(self, names: set[str], grace_s: float = 10.0) -> None:
        """SIGTERM the children named `names` (last started first), wait up to `grace_s`, SIGKILL the rest."""
        chosen = [c for c in reversed(self.children) if c.name in names]
        for child in chosen:
            if child.alive():
                _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in chosen:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait(5)
            self.children.remove(child)

    def stop_all(self, grace_s: float = 10.0) -> None:
        """Stop the services, then what they stand on (the adopted embedded broker): a service stopping
        still commits its offsets and flushes its records."""
        self.stop({c.name for c in self.children if c.argv is not None}, grace_s)
        self.stop({c.name for c in self.children}, grace_s)


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal the child's whole process group (it leads its own session), so its children go too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
