"""``smartcity up``: the whole platform on one machine.

Unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set it starts the embedded Tansu broker and
PostgreSQL; it creates the topics and every service's database, starts each service and the sensor
simulator as its own process, restarts a service that exits (with backoff), and shows live progress
until Ctrl-C (or SIGTERM). Then it drains: the simulator and ingest stop first, rewards decides every
accepted reading and the ledger settles every reward (a bounded wait, with its progress shown); then the
other services stop, the broker last. A second Ctrl-C skips the rest of the drain.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.live import Live

from services.common import db, embedded, offsets, roles
from services.common.bindings import development_order_key
from services.common.kafka import ensure_topics
from services.common.settings import DEFAULT_KAFKA_PORT, PlatformSettings
from services.common.signing import Keypair
from services.common.topics import ALL_TOPICS, READINGS, REWARDS
from services.ledger.settings import LedgerSettings
from services.rewards.settings import RewardsSettings
from services.stack import progress
from services.stack.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    default_port: int
    port_env: str
    has_database: bool = True
    fixed_port: int | None = None  # a further worker's, chosen at start

    @property
    def port(self) -> int:
        """The port from the service's own setting (e.g. INGEST_PORT), else its default."""
        if self.fixed_port is not None:
            return self.fixed_port
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
    # Last: its pages call the others, through it.
    ServiceSpec("portal", 8106, "PORTAL_PORT", has_database=False),
)


VERIFY_POOLS = ("REWARDS_VERIFY_WORKERS", "LEDGER_VERIFY_WORKERS")
"""The settings sizing the services' verification pools (`services.common.workers`)."""
POOLS_FROM_CORES = 3
"""The fewest cores on which `smartcity up` leaves the pools at the services' own defaults."""


def colocated_pools(cores: int | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The verification pools' sizes for a platform whose every process shares this host: each pool the
    environment does not size is turned off (0: the service checks in its own process) on fewer than
    `POOLS_FROM_CORES` cores.

    A pool runs a service's signature checks in processes beside it: parallelism, paid for by pickling each
    batch across processes. On two cores the platform's own processes (ingest, rewards, the ledger, the
    broker, PostgreSQL) keep both busy, so a pool adds no core, only its cost: ``python -m bench e2e`` on
    this project's 2-core machine (2026-12-02, 1 rewards worker, 40 s legs) settled 0.133-0.163 readings/s per
    bare Ed25519 verify/s without the pools (4 runs) against 0.103-0.125 with them (4 runs), and 1,565-1,762
    readings/s during the load against 1,104-1,260.
    """
    if (cores or 1) >= POOLS_FROM_CORES:
        return {}
    return {name: "0" for name in VERIFY_POOLS if name not in environ}


DRAINED_FIRST = {"simulator", "ingest"}
"""What stops first on Ctrl-C: nothing new is accepted while the rest settles what was."""
PLAIN_LINE_S = 5.0
"""How often the progress line is printed when the output is not a terminal (a terminal's table is redrawn
every second)."""


class StartupError(RuntimeError):
    """The platform could not start (or its broker died); the message says why and where to look."""


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


class Restarts:
    """Starts the services that exited again, each after its backoff, and says so."""

    def __init__(self, supervisor: Supervisor, say: Callable[[str], None]) -> None:
        self.supervisor = supervisor
        self.say = say
        self.due: dict[str, float] = {}

    def tend(self) -> None:
        """Restart what is due; raise `StartupError` if the embedded broker died (every topic went with it)."""
        for dead in self.supervisor.exited():
            if dead.argv is None:
                raise StartupError(f"{dead.name} exited with {dead.process.returncode}; see {dead.log_path}")
            now = time.monotonic()
            if dead.name not in self.due:
                wait_s = dead.backoff_s(now)
                self.due[dead.name] = now + wait_s
                self.say(
                    f"{dead.name} exited with {dead.process.returncode}; restarting it in {wait_s:.0f}s"
                    f" (see {dead.log_path})"
                )
            elif now >= self.due[dead.name]:
                del self.due[dead.name]
                again = self.supervisor.restart(dead)
                self.say(f"{dead.name} restarted (pid {again.process.pid})")


def _sayer(console: Console) -> Callable[[str], None]:
    def say(text: str) -> None:
        if console.is_terminal:
            console.print(text, markup=False)  # above a live table
        else:
            print(text, flush=True)

    return say


async def _show_progress(restarts: Restarts, console: Console, started: float, auditor: Keypair) -> None:
    urls = {spec.name: spec.url for spec in SERVICES}
    interactive = console.is_terminal
    previous: progress.Snapshot | None = None
    async with httpx.AsyncClient(timeout=2) as client:
        live = Live(console=console, refresh_per_second=2, transient=False) if interactive else None
        try:
            if live:
                live.start()
            last_line = 0.0
            while True:
                restarts.tend()
                # Without a terminal a line is printed every PLAIN_LINE_S, so the services' metrics are read
                # only then: each read renders three /metrics pages and a signed ledger query, a load the
                # platform would otherwise carry every second for lines nobody sees.
                if live or time.monotonic() - last_line >= PLAIN_LINE_S:
                    snap = await progress.collect(client, urls, previous, auditor)
                    previous = snap
                    uptime = snap.at - started
                    if live:
                        live.update(progress.table(snap, uptime))
                    else:
                        print(progress.plain_line(snap, uptime), flush=True)
                        last_line = snap.at
                await asyncio.sleep(1)
        finally:
            if live:
                live.stop()


async def _drain(bootstrap: str, restarts: Restarts, timeout_s: float) -> bool:
    """Wait until rewards has decided every reading on the topic and the ledger settled every reward, or
    `timeout_s` passed; say how much is left as it goes. True if drained.

    Stage by stage: rewards publishes a reading's rewards before it commits the reading, so once no
    reading is left the rewards topic is complete. Services that exit meanwhile are restarted.
    """
    stages = (
        (READINGS, RewardsSettings().app_id, "readings records to decide"),
        (REWARDS, LedgerSettings().consumer_group, "rewards to settle"),
    )
    deadline = time.monotonic() + timeout_s
    said_at = 0.0
    while True:
        restarts.tend()
        left: list[str] = []
        for topic, group, what in stages:
            count = await asyncio.to_thread(offsets.backlog, bootstrap, group, topic)
            if count:
                left.append(f"{count:,} {what}")
                break  # the next stage is not complete before this one is done
        if not left:
            restarts.say("drained: every accepted reading is decided and every reward it earned settled")
            return True
        now = time.monotonic()
        if now > deadline:
            restarts.say(f"drain gave up after {timeout_s:.0f}s: {', '.join(left)} left")
            return False
        if now - said_at >= 2:
            restarts.say("draining: " + ", ".join(left) + " (Ctrl-C again to stop now)")
            said_at = now
        await asyncio.sleep(0.5)


def up(
    platform: PlatformSettings,
    simulate: bool = True,
    drain_timeout_s: float = 120.0,
    rewards_workers: int = 1,
) -> int:
    """Run the platform until interrupted, then drain it (at most `drain_timeout_s`) and stop it; returns
    the process exit code. `rewards_workers` rewards processes share the readings partitions (the first
    on the rewards port, the others on free ports, named ``rewards-2``...)."""
    console = Console(emoji=False)
    say = _sayer(console)
    data_dir = platform.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    log_dir = data_dir / "logs"
    supervisor = Supervisor(log_dir)
    restarts = Restarts(supervisor, say)
    started_postgres = False
    bootstrap: str | None = None
    # Also SIGINT: a shell starting it in the background (make run &) leaves SIGINT ignored.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    started = time.monotonic()
    try:
        try:
            for spec in SERVICES:
                if embedded.port_open("127.0.0.1", spec.port):
                    raise StartupError(
                        f"port {spec.port} ({spec.name}) is taken: is another platform running?"
                    )
            bootstrap = _broker(platform, supervisor, log_dir)
            say(
                f"broker: {bootstrap}"
                f"{'' if platform.kafka_bootstrap_servers else ' (embedded Tansu, memory only)'}"
            )
            created = ensure_topics(bootstrap, ALL_TOPICS)
            say(f"topics: {len(ALL_TOPICS)} ({len(created)} created)")
            database_url = platform.database_url or embedded.postgres_url(data_dir)
            started_postgres = platform.database_url is None
            say(
                f"database: {'embedded PostgreSQL in ' + str(data_dir) if started_postgres else 'DATABASE_URL'}"
            )
            cores = os.cpu_count()
            pools = colocated_pools(cores, os.environ)
            if pools:
                say(
                    f"verification pools: off on {cores} cores shared by every service ({' and '.join(pools)} = 0)"
                )
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "DATABASE_URL": database_url,
                "SMARTCITY_DATA_DIR": str(data_dir),
                # Rewards puts its policies on the chain before any reward names them.
                "REWARDS_LEDGER_URL": next(s.url for s in SERVICES if s.name == "ledger"),
                # Identity submits the transfers it signs for custodial wallets.
                "IDENTITY_LEDGER_URL": next(s.url for s in SERVICES if s.name == "ledger"),
                # Identity forwards a person's erasure to ingest and the ledger.
                "IDENTITY_INGEST_URL": next(s.url for s in SERVICES if s.name == "ingest"),
                # The data dir's credential-ordering key (unless set): the simulator binds its wallets to
                # people with it, so that they earn under a policy requiring binding.
                "IDENTITY_ISSUERS": os.environ.get(
                    "IDENTITY_ISSUERS", json.dumps([development_order_key(data_dir).did])
                ),
                # The portal passes its pages' calls on to each service.
                **{f"PORTAL_{s.name.upper()}_URL": s.url for s in SERVICES if s.name != "portal"},
                **pools,
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
            rewards = next(s for s in SERVICES if s.name == "rewards")
            extra = tuple(
                ServiceSpec(f"rewards-{n}", 0, rewards.port_env, False, embedded.free_port())
                for n in range(2, rewards_workers + 1)
            )
            for spec in extra:
                supervisor.start(
                    spec.name,
                    [sys.executable, "-m", "services.rewards"],
                    {**env, spec.port_env: str(spec.port)},
                )
            asyncio.run(_wait_ready(SERVICES + extra, supervisor))
            say("services ready: " + ", ".join(f"{s.name} {s.url}" for s in SERVICES + extra))
            say(f"open the city's pages: {next(s.url for s in SERVICES if s.name == 'portal')}/")
            if simulate:
                ingest_url = next(s.url for s in SERVICES if s.name == "ingest")
                simulator_env = {**env, "SIMULATOR_INGEST_URL": ingest_url}
                simulator_env["SIMULATOR_IDENTITY_URL"] = next(
                    s.url for s in SERVICES if s.name == "identity"
                )
                supervisor.start("simulator", [sys.executable, "-m", "services.simulator"], simulator_env)
            say(f"logs in {log_dir}")
            # The top wallets are personal: read as the development chain's auditor (roles.auditor_key).
            asyncio.run(_show_progress(restarts, console, started, roles.auditor_key(data_dir)))
        except KeyboardInterrupt:
            if bootstrap is None or not supervisor.children:
                return 0
            say("stopping: ingest and the simulator first, then draining what they accepted…")
            supervisor.stop(DRAINED_FIRST)
            asyncio.run(_drain(bootstrap, restarts, drain_timeout_s))
        return 0
    except KeyboardInterrupt:
        say("drain skipped")
        return 0
    except (StartupError, embedded.EmbeddedStackMissing) as exc:
        say(f"error: {exc}")
        return 1
    finally:
        # A further Ctrl-C must not cut the shutdown short and leave processes behind.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        supervisor.stop_all()
        if started_postgres:
            embedded.stop_postgres(data_dir)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        say("stopped")
