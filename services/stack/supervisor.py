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


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None


class Supervisor:
    """Owns child processes: each in its own session (the terminal's Ctrl-C reaches only the
    supervisor, which then stops them in reverse order of start)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: list[ManagedProcess] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str]) -> ManagedProcess:
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
        child = ManagedProcess(name, process, log_path)
        self.children.append(child)
        log.info("started %s (pid %d), log %s", name, process.pid, log_path)
        return child

    def adopt(self, name: str, process: subprocess.Popen, log_path: Path) -> None:
        """Take charge of a process started elsewhere (the embedded broker)."""
        self.children.append(ManagedProcess(name, process, log_path))

    def exited(self) -> list[ManagedProcess]:
        return [c for c in self.children if not c.alive()]

    def stop_all(self, grace_s: float = 10.0) -> None:
        """SIGTERM every child (last started first), wait up to `grace_s`, then SIGKILL the rest."""
        for child in reversed(self.children):
            if child.alive():
                _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in reversed(self.children):
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", child.name)
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait(5)
        self.children.clear()


def _signal_group(process: subprocess.Popen, sig: signal.Signals) -> None:
    """Signal the child's whole process group (it leads its own session), so its children go too."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
