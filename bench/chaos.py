"""Chaos run: load through the embedded platform while its services are SIGKILLed in turn, then the books.

``python -m bench chaos [--minutes M] [--kill-every-s N] [--rate R]`` (or ``make chaos``) starts
``smartcity up --no-simulate`` in a fresh data dir, registers a fleet, grants its consents, and sends signed
readings at R per second for M minutes, SIGKILLing one service every N seconds (ingest, rewards, ledger,
identity, directory, in turn; ``smartcity up`` restarts each). Then it stops the load, waits until every
consumer has caught up, and checks:

- every accepted reading was decided exactly once (one decision, however often it was redelivered);
- every rewarded decision was settled exactly once, in counts and in sums, wallet by wallet;
- the chain verifies (``smartcity verify --replay``);
- no consumer is stuck (no backlog, every service ready).

It prints them as a table and exits non-zero if one fails. A batch whose answer was lost with a killed
ingest is sent again: a reading ingest then calls a duplicate was accepted the first time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from bench._running import PORT_ENVS, RunningPlatform
from services.common import offsets
from services.common.bindings import development_order_key
from services.common.ids import reading_id
from services.common.roles import AUDITOR_KEY, operator_key
from services.common.roles import auditor_key as auditor_key_of
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.common.topics import READINGS, REWARD_DECISIONS, REWARDS, Topic
from services.ledger.settings import LedgerSettings
from services.rewards.settings import RewardsSettings
from services.simulator.fleet import Fleet
from services.simulator.run import bind_wallets, grant_consents, register

VICTIMS = ("ingest", "rewards", "ledger", "identity", "directory")
BATCH = 20


@dataclass(frozen=True)
class Options:
    minutes: float = 5.0
    kill_every_s: float = 10.0
    rate: float = 100.0
    """Readings per second sent to ingest."""
    wallets: int = 10
    devices: int = 40
    settle_timeout_s: float = 300.0


def parse(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=Options.minutes, help="how long the load runs")
    parser.add_argument(
        "--kill-every-s", type=float, default=Options.kill_every_s, help="seconds between kills"
    )
    parser.add_argument("--rate", type=float, default=Options.rate, help="readings per second")
    parser.add_argument("--settle-timeout-s", type=float, default=Options.settle_timeout_s)
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.kill_every_s <= 0 or args.rate <= 0:
        parser.error("--minutes, --kill-every-s and --rate must be positive")
    return Options(args.minutes, args.kill_every_s, args.rate, settle_timeout_s=args.settle_timeout_s)


@dataclass
class Load:
    """Sends the fleet's signed readings and remembers which ingest accepted."""

    fleet: Fleet
    accepted: dict[str, str] = field(default_factory=dict)
    """reading id -> owner wallet"""
    rejected: Counter[str] = field(default_factory=Counter)
    retried_batches: int = 0

    async def run(self, ingest_url: str, rate: float, stop: asyncio.Event) -> None:
        devices = itertools.cycle(self.fleet.devices)
        interval = BATCH / rate
        next_send = time.monotonic()
        async with httpx.AsyncClient(base_url=ingest_url, timeout=10) as client:
            while not stop.is_set():
                # A batch holds each device at most once, and is settled before the next: a duplicate on a
                # resend can only be the first attempt's acceptance.
                batch = [next(devices).next_reading(datetime.now(UTC)) for _ in range(BATCH)]
                await self._send(client, batch)
                next_send += interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, next_send - time.monotonic()))

    async def _send(self, client: httpx.AsyncClient, batch: list[dict[str, Any]]) -> None:
        resent = False
        while True:
            try:
                response = await client.post("/v1/readings", json={"readings": batch})
                if response.status_code == 202:
                    break
            except httpx.HTTPError:
                pass
            resent = True  # killed, restarting, or over its limits: the same batch again
            await asyncio.sleep(0.5)
        self.retried_batches += resent
        owners = {d.device_id: d.owner.did for d in self.fleet.devices}
        for reading, result in zip(batch, response.json()["results"], strict=True):
            reason = (result.get("reason") or "").split(":")[0]
            if result["status"] == "accepted" or (resent and reason == "duplicate"):
                self.accepted[reading_id(reading["device_id"], reading["seq"])] = owners[reading["device_id"]]
            else:
                self.rejected[reason or result["status"]] += 1


async def kill_in_turn(platform: RunningPlatform, every_s: float, stop: asyncio.Event) -> list[str]:
    """SIGKILL the next of `VICTIMS` (its whole process group) every `every_s` until `stop`."""
    kills: list[str] = []
    for name in itertools.cycle(VICTIMS):
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        if stop.is_set():
            return kills
        pid = platform.service_pid(name)
        if pid is None:
            kills.append(f"{name}: not running")
            continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        kills.append(name)
    return kills


async def caught_up(platform: RunningPlatform, bootstrap: str, timeout_s: float) -> dict[str, int]:
    """Wait until every service is ready and both stages have no backlog (three checks in a row); return the
    backlogs last seen."""
    stages = {
        "readings records not decided (backlog)": (READINGS, RewardsSettings().app_id),
        "rewards not settled (backlog)": (REWARDS, LedgerSettings().consumer_group),
    }
    deadline = time.monotonic() + timeout_s
    quiet = 0
    async with httpx.AsyncClient(timeout=3) as client:
        while True:
            platform.read_lines()
            backlogs = {
                what: await asyncio.to_thread(offsets.backlog, bootstrap, group, topic)
                for what, (topic, group) in stages.items()
            }
            ready = []
            for name in PORT_ENVS:
                try:
                    ready.append((await client.get(f"{platform.url(name)}/readyz")).status_code == 200)
                except httpx.HTTPError:
                    ready.append(False)
            quiet = quiet + 1 if all(ready) and not any(backlogs.values()) else 0
            if quiet >= 3 or time.monotonic() > deadline:
                return {**backlogs, "services not ready": ready.count(False)}
            await asyncio.sleep(1)


def read_topic(bootstrap: str, topic: Topic) -> list[Any]:
    """Every value of `topic` (a batch record's lines each), from the beginning to its end."""
    ends = offsets.end_offsets(bootstrap, topic)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "chaos-reader", "enable.partition.eof": True}
    )
    pending = {p for p, end in ends.items() if end > 0}
    consumer.assign([TopicPartition(topic.name, p, OFFSET_BEGINNING) for p in pending])
    values = []
    try:
        while pending:
            for message in consumer.consume(10000, 0.2):
                error = message.error()
                if error is None:
                    values.extend(json.loads(line) for line in message.value().split(b"\n"))
                    if message.offset() + 1 >= ends[message.partition()]:
                        pending.discard(message.partition())
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
    finally:
        consumer.close()
    return values


async def settled(ledger_url: str, wallets: set[str], auditor: Keypair) -> dict[str, tuple[int, int]]:
    """Per wallet, how many reward transactions the ledger settled and their CITY sum (read as `auditor`)."""
    books: dict[str, tuple[int, int]] = {}
    async with httpx.AsyncClient(base_url=ledger_url, timeout=30, auth=SignedReadAuth(auditor)) as client:
        for wallet in wallets:
            count = total = 0
            before: int | None = None
            while True:
                params = {"limit": 1000, **({"before": before} if before else {})}
                page = (await client.get(f"/v1/accounts/{wallet}/transactions", params=params)).json()
                for tx in page["transactions"]:
                    if tx["type"] == "reward":
                        count += 1
                        total += tx["changes"].get("CITY", 0)
                if (before := page["next_before"]) is None:
                    break
            books[wallet] = (count, total)
    return books


def verify_chain(ledger_url: str, data_dir: Path) -> tuple[bool, str]:
    """``smartcity verify --replay``, comparing every account's balance as the development auditor."""
    key = httpx.get(f"{ledger_url}/v1/checkpoint", timeout=10).json()["public_key"]
    auditor_key = data_dir / AUDITOR_KEY[0] / f"{AUDITOR_KEY[1]}.key"
    auditor_key_of(data_dir)  # created on first use
    command = [
        "verify",
        "--ledger",
        ledger_url,
        "--public-key",
        key,
        "--replay",
        "--auditor-key",
        str(auditor_key),
    ]
    result = subprocess.run(
        [sys.executable, "-m", "services", *command], capture_output=True, text=True, timeout=600
    )
    return result.returncode == 0, (result.stdout or result.stderr).strip().splitlines()[-1]


@dataclass(frozen=True)
class Row:
    check: str
    expected: str
    observed: str
    ok: bool | None  # None: a figure, not a check


def books(load: Load, decisions: list[dict[str, Any]], ledger: dict[str, tuple[int, int]]) -> list[Row]:
    """The exactly-once checks of decisions against the accepted readings, and of the ledger against them."""
    ours = {d.device_id for d in load.fleet.devices}
    by_reading: dict[str, set[str]] = defaultdict(set)
    copies = 0
    for decision in decisions:
        if decision["device_id"] in ours:
            copies += 1
            by_reading[decision["reading_id"]].add(json.dumps([decision["outcome"], decision["rewards"]]))
    accepted = set(load.accepted)
    decided = accepted & set(by_reading)
    twice = sum(len(kinds) > 1 for kinds in by_reading.values())
    strays = len(set(by_reading) - accepted)
    earned: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for reading, kinds in by_reading.items():
        if reading in accepted and len(kinds) == 1:
            _outcome, rewards = json.loads(next(iter(kinds)))
            wallet = load.accepted[reading]
            earned[wallet][0] += len(rewards)
            earned[wallet][1] += sum(r["amount"] for r in rewards)
    want_count = sum(c for c, _ in earned.values())
    want_sum = sum(s for _, s in earned.values())
    got_count = sum(c for c, _ in ledger.values())
    got_sum = sum(s for _, s in ledger.values())
    wallets_off = sum(
        tuple(earned.get(w, [0, 0])) != ledger.get(w, (0, 0)) for w in set(earned) | set(ledger)
    )
    return [
        Row("readings accepted", "-", f"{len(accepted):,}", None),
        Row("accepted readings decided", f"{len(accepted):,}", f"{len(decided):,}", decided == accepted),
        Row("readings decided differently twice", "0", f"{twice:,}", twice == 0),
        Row("decisions of readings never accepted", "0", f"{strays:,}", strays == 0),
        Row("decision records (redeliveries included)", "-", f"{copies:,}", None),
        Row("rewards settled (count)", f"{want_count:,}", f"{got_count:,}", want_count == got_count),
        Row("rewards settled (µCITY)", f"{want_sum:,}", f"{got_sum:,}", want_sum == got_sum),
        Row("wallets whose books differ", "0", f"{wallets_off:,}", wallets_off == 0),
    ]


def format_table(rows: list[Row]) -> str:
    width = max(len(r.check) for r in rows)
    lines = [f"{'check':<{width}}  {'expected':>14}  {'observed':>14}  result"]
    for r in rows:
        result = "-" if r.ok is None else ("ok" if r.ok else "FAILED")
        lines.append(f"{r.check:<{width}}  {r.expected:>14}  {r.observed:>14}  {result}")
    return "\n".join(lines)


async def run(options: Options) -> list[Row]:
    """The chaos run; its table's rows."""
    data_dir = Path(tempfile.mkdtemp(prefix="smartcity-chaos-"))
    platform = RunningPlatform(data_dir, "--no-simulate")
    try:
        broker = platform.wait_for_line(lambda line: line.startswith("broker: "), 120).split()[1]
        platform.wait_ready()
        fleet = Fleet.generate(  # its behaviour readings attested by city devices of the data dir's operator
            "chaos",
            options.wallets,
            options.devices,
            first_seq=int(time.time() * 1000),
            operator=operator_key(data_dir),
        )
        async with httpx.AsyncClient(base_url=platform.url("identity"), timeout=30) as identity:
            await grant_consents(identity, fleet)
            # The city's policy pays only wallets bound to a person (the data dir's ordering key issues).
            await bind_wallets(identity, fleet, development_order_key(data_dir))
        async with httpx.AsyncClient(base_url=platform.url("ingest"), timeout=30) as ingest:
            await register(ingest, fleet)
        await asyncio.sleep(2)  # the grants reach ingest's consent view within its bound
        load = Load(fleet)
        stop = asyncio.Event()
        started = time.monotonic()
        sending = asyncio.create_task(load.run(platform.url("ingest"), options.rate, stop))
        killing = asyncio.create_task(kill_in_turn(platform, options.kill_every_s, stop))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), options.minutes * 60)
        stop.set()
        kills = await killing
        await sending
        loaded_s = time.monotonic() - started
        backlogs = await caught_up(platform, broker, options.settle_timeout_s)
        decisions = await asyncio.to_thread(read_topic, broker, REWARD_DECISIONS)
        ledger = await settled(
            platform.url("ledger"), {w.did for w in fleet.wallets}, auditor_key_of(data_dir)
        )
        verified, verdict = await asyncio.to_thread(verify_chain, platform.url("ledger"), data_dir)
        restarts = sum(" restarted (pid " in line for line in platform.seen)
        rows = [
            Row("load (s)", "-", f"{loaded_s:,.0f}", None),
            Row("kills (SIGKILL)", "-", f"{len([k for k in kills if ':' not in k]):,}", None),
            Row("restarts by smartcity up", "-", f"{restarts:,}", None),
            Row("batches resent", "-", f"{load.retried_batches:,}", None),
            Row("readings refused by ingest", "-", f"{sum(load.rejected.values()):,}", None),
            *books(load, decisions, ledger),
            Row("chain verifies (--replay)", "OK", re.sub(r"\s+", " ", verdict)[:14], verified),
            *(Row(what, "0", f"{n:,}", n == 0) for what, n in backlogs.items()),
        ]
        return rows
    finally:
        platform.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def main(argv: Sequence[str] = ()) -> None:
    options = parse(argv)
    print(
        f"chaos: {options.minutes:g} min of {options.rate:g} readings/s, a SIGKILL every {options.kill_every_s:g}s"
        f" ({', '.join(VICTIMS)} in turn)"
    )
    rows = asyncio.run(run(options))
    print(format_table(rows))
    if not all(r.ok for r in rows if r.ok is not None):
        sys.exit(1)
