"""``smartcity up``: the whole platform on one machine.

Unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set it starts the embedded Tansu broker and
PostgreSQL; it creates the topics and every service's database, starts each service and the sensor
simulator as its own process, shows live progress until Ctrl-C (or SIGTERM), then stops everything it
started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.live import Live

from services.common import db, embedded
from services.common.kafka import ensure_topics
from services.common.settings import DEFAULT_KAFKA_PORT, PlatformSettings
from services.common.topics import ALL_TOPICS
from services.stack import progress
from services.stack.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    default_port: int
    port_env: str
    has_database: bool = True

    @property
    def port(self) -> int:
        """The port from the service's own setting (e.g. INGEST_PORT), else its default."""
        return int(os.environ.get(self.port_env, self.default_port))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


SERVICES = (
    ServiceSpec("identity", 8104, "IDENTITY_PORT"),
    ServiceSpec("directory", 8105, "DIRECTORY_PORT"),
    ServiceSpec("ledger", 8103, "LEDGER_PORT"),
    ServiceSpec("rewards", 8102, "REWARDS_WEB_PORT", has_database=False),
    ServiceSpec("ingest", 8101, "INGEST_PORT"),
)


class StartupError(RuntimeError):
    """The platform could not start; the message says why and where to look."""


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _broker(platform: PlatformSettings, supervisor: Supervisor, log_dir: Path) -> str:
    if platform.kafka_bootstrap_servers:
        return platform.kafka_bootstrap_servers
    port = DEFAULT_KAFKA_PORT
    if embedded.port_open("127.0.0.1", port):
        port = embedded.free_port()
    process = embedded.start_broker(port, log_dir / "broker.log")
    supervisor.adopt("broker", process, log_dir / "broker.log")
    return f"127.0.0.1:{port}"


async def _prepare_databases(platform: PlatformSettings) -> None:
    for spec in SERVICES:
        if spec.has_database:
            await db.prepare_database(platform, spec.name)


async def _wait_ready(specs: tuple[ServiceSpec, ...], supervisor: Supervisor, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    pending = list(specs)
    async with httpx.AsyncClient(timeout=2) as client:
        while pending:
            if dead := supervisor.exited():
                raise StartupError(
                    f"{dead[0].name} exited with {dead[0].process.returncode}; see {dead[0].log_path}"
                )
            if time.monotonic() > deadline:
                raise StartupError(f"not ready after {timeout_s:.0f}s: {', '.join(s.name for s in pending)}")
            still = []
            for spec in pending:
                try:
                    ready = (await client.get(f"{spec.url}/readyz")).status_code == 200
                except httpx.HTTPError:
                    ready = False
                if not ready:
                    still.append(spec)
            pending = still
            if pending:
                await asyncio.sleep(0.5)


async def _show_progress(supervisor: Supervisor, console: Console, started: float) -> None:
    urls = {spec.name: spec.url for spec in SERVICES}
    interactive = console.is_terminal

    def say(text: str) -> None:
        if interactive:
            console.print(text, markup=False)  # above the live table
        else:
            print(text, flush=True)

    previous: progress.Snapshot | None = None
    async with httpx.AsyncClient(timeout=2) as client:
        live = Live(console=console, refresh_per_second=2, transient=False) if interactive else None
        try:
            if live:
                live.start()
            last_line = 0.0
            restart_at: dict[str, float] = {}
            while True:
                for dead in supervisor.exited():
                    if dead.argv is None:  # the embedded broker: every topic is gone with it
                        raise StartupError(
                            f"{dead.name} exited with {dead.process.returncode}; see {dead.log_path}"
                        )
                    now = time.monotonic()
                    if dead.name not in restart_at:
                        wait_s = dead.backoff_s(now)
                        restart_at[dead.name] = now + wait_s
                        say(
                            f"{dead.name} exited with {dead.process.returncode}; restarting it in {wait_s:.0f}s"
                            f" (see {dead.log_path})"
                        )
                    elif now >= restart_at[dead.name]:
                        del restart_at[dead.name]
                        again = supervisor.restart(dead)
                        say(f"{dead.name} restarted (pid {again.process.pid})")
                snap = await progress.collect(client, urls, previous)
                previous = snap
                uptime = time.monotonic() - started
                if live:
                    live.update(progress.table(snap, uptime))
                elif snap.at - last_line >= 5:
                    print(progress.plain_line(snap, uptime), flush=True)
                    last_line = snap.at
                await asyncio.sleep(1)
        finally:
            if live:
                live.stop()


def up(platform: PlatformSettings, simulate: bool = True) -> int:
    """Run the platform until interrupted; returns the process exit code."""
    console = Console(emoji=False)
    say = console.print if console.is_terminal else print
    data_dir = platform.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    supervisor = Supervisor(log_dir)
    started_postgres = False
    signal.signal(signal.SIGTERM, _raise_interrupt)
    started = time.monotonic()
    try:
        for spec in SERVICES:
            if embedded.port_open("127.0.0.1", spec.port):
                raise StartupError(f"port {spec.port} ({spec.name}) is taken: is another platform running?")
        bootstrap = _broker(platform, supervisor, log_dir)
        say(
            f"broker: {bootstrap}{'' if platform.kafka_bootstrap_servers else ' (embedded Tansu, memory only)'}"
        )
        created = ensure_topics(bootstrap, ALL_TOPICS)
        say(f"topics: {len(ALL_TOPICS)} ({len(created)} created)")
        database_url = platform.database_url or embedded.postgres_url(data_dir)
        started_postgres = platform.database_url is None
        say(f"database: {'embedded PostgreSQL in ' + str(data_dir) if started_postgres else 'DATABASE_URL'}")
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": database_url,
            "SMARTCITY_DATA_DIR": str(data_dir),
            # Rewards puts its policies on the chain before any reward names them.
            "REWARDS_LEDGER_URL": next(s.url for s in SERVICES if s.name == "ledger"),
        }
        platform = platform.model_copy(
            update={"kafka_bootstrap_servers": bootstrap, "database_url": database_url}
        )
        asyncio.run(_prepare_databases(platform))
        for spec in SERVICES:
            supervisor.start(
                spec.name,
                [sys.executable, "-m", f"services.{spec.name}"],
                {**env, spec.port_env: str(spec.port)},
            )
        asyncio.run(_wait_ready(SERVICES, supervisor))
        say("services ready: " + ", ".join(f"{s.name} {s.url}" for s in SERVICES))
        if simulate:
            ingest_url = next(s.url for s in SERVICES if s.name == "ingest")
            simulator_env = {**env, "SIMULATOR_INGEST_URL": ingest_url}
            simulator_env["SIMULATOR_IDENTITY_URL"] = next(s.url for s in SERVICES if s.name == "identity")
            supervisor.start("simulator", [sys.executable, "-m", "services.simulator"], simulator_env)
        say(f"logs in {log_dir}")
        asyncio.run(_show_progress(supervisor, console, started))
        return 0
    except KeyboardInterrupt:
        say("stopping…")
        return 0
    except StartupError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave processes behind.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop_all()
        if started_postgres:
            embedded.stop_postgres(data_dir)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        say("stopped")
