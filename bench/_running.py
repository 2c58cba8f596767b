"""``smartcity up`` as a child process, on free ports and in its own data dir, its output followed line by
line: what the chaos run (`bench.chaos`) and the end-to-end tests drive."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import psutil

from services.common.embedded import free_port

PORT_ENVS = {
    "ingest": "INGEST_PORT",
    "rewards": "REWARDS_WEB_PORT",
    "ledger": "LEDGER_PORT",
    "identity": "IDENTITY_PORT",
    "directory": "DIRECTORY_PORT",
    "portal": "PORTAL_PORT",
}


class RunningPlatform:
    """``smartcity up *args`` on the embedded stack in `data_dir` (the environment's broker and database
    settings are dropped), each service on a free port unless `ports` says otherwise."""

    def __init__(
        self,
        data_dir: Path,
        *args: str,
        ports: Mapping[str, int] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.ports = dict(ports or {name: free_port() for name in PORT_ENVS})
        child_env = {
            k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")
        }
        child_env.update({PORT_ENVS[name]: str(port) for name, port in self.ports.items()})
        child_env.update({"SMARTCITY_DATA_DIR": str(data_dir), **(env or {})})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "services", "up", *args],
            env=child_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))

    def read_lines(self) -> list[str]:
        """The lines printed since the last call (all of them are kept in `seen`)."""
        new = []
        with contextlib.suppress(queue.Empty):
            while True:
                new.append(self._lines.get_nowait())
        self.seen.extend(new)
        return new

    def wait_for_line(self, predicate: Callable[[str], bool], timeout_s: float) -> str:
        """The first new line `predicate` holds for; raises RuntimeError if ``smartcity up`` exits or
        `timeout_s` passes first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise RuntimeError(f"smartcity up exited: {self.seen[-20:]}") from None
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        raise RuntimeError(f"no such line within {timeout_s}s; output so far: {self.seen[-20:]}")

    def wait_ready(self, timeout_s: float = 180) -> None:
        try:
            self.wait_for_line(lambda line: line.startswith("services ready"), timeout_s)
        except BaseException:
            self.stop()
            raise

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def service_pid(self, service: str) -> int | None:
        """The pid of `service` (a direct child of ``smartcity up``), if it runs."""
        for child in psutil.Process(self.process.pid).children():
            with contextlib.suppress(psutil.Error):
                if f"services.{service}" in child.cmdline():
                    return child.pid
        return None

    def stop(self, timeout_s: float = 240) -> int | None:
        """Ctrl-C (it drains, then stops), wait for it, kill it if it does not stop; its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.read_lines()
        return self.process.returncode


@contextlib.contextmanager
def fresh_platform(
    *args: str, env: Mapping[str, str] | None = None, prefix: str = "smartcity-"
) -> Iterator[RunningPlatform]:
    """``smartcity up *args`` in a new data dir (a temporary one named from `prefix`), ready; on leaving,
    stopped (it drains) and its data dir removed."""
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        running = RunningPlatform(data_dir, *args, env=env)
        try:
            running.wait_ready()
            yield running
        finally:
            running.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
