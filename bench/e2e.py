"""End to end: signed readings posted to ingest, decided by rewards, settled and sealed by the ledger, with one
and with two rewards workers, beside the bare Ed25519 verify rate measured in the same run.

Each leg runs ``smartcity up --no-simulate --rewards-workers N`` in a data dir of its own (embedded broker and
PostgreSQL, every service), then:

1. registers DEVICES devices of OWNERS owners over ingest's API (each owner's consent granted first), under a
   policy that pays every reading (the city's, without its people section, caps out of reach), so that every
   reading accepted is a reward to settle;
2. a load generator in this process (CLIENTS concurrent HTTP clients, batches of BATCH pre-signed readings,
   back to back) drives ingest for DURATION_S;
3. a consumer of ``city.ledger.settled.v1`` notes when each reward's settlement was published (the block
   sealed), to the end of the load and then until the backlog is settled (or DRAIN_S passes);
4. it prints readings accepted and settled per second, p50/p99 from a reading's post to its reward's sealed
   settlement and of each hop on the way (read from the records' timestamps once the leg is drained), CPU
   per reading of each stage (its processes, children included: ingest, rewards, ledger, broker, PostgreSQL,
   and this load generator), and which stage spent most, and the cores the platform kept busy while idle
   (measured for IDLE_S before the load: consumers polling the broker, timers, a share of every figure above);
5. after each leg, with the platform stopped, it measures the bare Ed25519 verify rate (PyNaCl, one core),
   and prints the leg's CPU a reading and its settled rate in units of it as well: this machine is shared
   and its speed drifts (the rate moved by half within minutes), so those figures, not the raw ones, compare
   legs and runs.

``BENCH_E2E_DURATION_S`` (60), ``BENCH_E2E_WORKERS`` ("1,2"), ``BENCH_E2E_READINGS`` (the most pre-signed,
300000) change the run; ``BENCH_E2E_RATE`` offers readings at that rate (open loop) instead of as fast as
ingest takes them, which measures the latency below saturation (at saturation it measures the queue).
``READINGS_PER_RECORD`` (the platform's setting, 100 by default) reaches every service of the leg: 1 measures
the pipeline with one reading a ``city.readings.v1`` record.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
import yaml
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from bench._running import fresh_platform
from bench.ingest import grant_consents, register_devices, verify_rate_baseline
from services.common import events
from services.common.events import encode_json
from services.common.ids import reading_id, reward_id
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import LEDGER_SETTLED, READINGS, REWARD_DECISIONS, Topic
from services.ingest.devices import sign_registration
from services.ledger.transactions import REWARD, derive_tx_id

DURATION_S = float(os.environ.get("BENCH_E2E_DURATION_S", "60"))
WORKERS = [int(n) for n in os.environ.get("BENCH_E2E_WORKERS", "1,2").split(",")]
MAX_READINGS = int(os.environ.get("BENCH_E2E_READINGS", "300000"))
RATE = float(os.environ.get("BENCH_E2E_RATE", "0"))  # readings/s offered; 0: as fast as ingest takes them
DEVICES = 3000
OWNERS = 600
ZONES = 12
BATCH = 500
CLIENTS = 4
DRAIN_S = 90.0
IDLE_S = 10.0  # how long the idle platform's CPU is measured before the load
RULE = "data.air_quality"
POLICY = Path(__file__).resolve().parents[1] / "services" / "rewards" / "policies" / "city.yaml"
STAGES = ("ingest", "rewards", "ledger", "broker", "postgres", "load generator")


@dataclass
class Leg:
    """What one leg measured."""

    workers: int
    accepted: int = 0
    seconds: float = 0.0
    settled_in_load: int = 0
    settled: int = 0
    settled_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0  # cores the platform and the load generator kept busy during the load
    restarts: list[str] = field(default_factory=list)  # services `smartcity up` restarted meanwhile
    unsettled: Counter[str] = field(default_factory=Counter)  # why accepted readings earned nothing to settle
    hops: dict[str, list[float]] = field(default_factory=dict)  # per hop, each settled reading's latency
    verify_rate: float = 0.0  # bare Ed25519 verifies /s on one core, measured right after the leg
    idle: float = 0.0  # cores the platform kept busy with nothing to do, just before the load

    def cpu_per_reading_s(self) -> float:
        """CPU seconds a reading settled cost, every stage together."""
        return sum(self.cpu.values()) / max(1, self.settled)

    def settled_rate(self) -> float:
        return self.settled / self.settled_seconds if self.settled_seconds else 0.0


def _policy(directory: Path) -> Path:
    """The city's policy paying every reading: no people section (the bench's wallets are bound to no one),
    caps out of reach."""
    document = yaml.safe_load(POLICY.read_text())
    document.pop("people", None)
    document["version"] = "bench-e2e"
    document["caps"] = {"device_per_hour": 10**12, "wallet_per_day": 10**12}
    path = directory / "policy.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _fleet() -> tuple[list[tuple[Keypair, Keypair, str]], list[dict]]:
    owners = [Keypair.generate() for _ in range(OWNERS)]
    devices = [(Keypair.generate(), owners[i % OWNERS], f"zone-{i % ZONES}") for i in range(DEVICES)]
    registrations = [
        sign_registration(
            owner, key, {"device_id": key.did, "owner": owner.did, "kind": "air_quality", "zone": zone}
        )
        for key, owner, zone in devices
    ]
    return devices, registrations


def _readings(devices: list[tuple[Keypair, Keypair, str]], count: int) -> list[list[bytes]]:
    """Per client, its batches (encoded request bodies): its own devices in turn, each device's readings in
    sequence, their times spread as if sent at 6,000 a second from now on (no burst, none stuck)."""
    per_client = [devices[c::CLIENTS] for c in range(CLIENTS)]
    start = datetime.now(UTC)
    out: list[list[bytes]] = [[] for _ in range(CLIENTS)]
    seqs: dict[str, int] = defaultdict(int)
    for n in range(count // BATCH):
        client = n % CLIENTS
        mine = per_client[client]
        batch = []
        for i in range(BATCH):
            key, _, zone = mine[(len(out[client]) * BATCH + i) % len(mine)]
            seqs[key.did] += 1
            ts = start + timedelta(seconds=(n * BATCH + i) / 6000)
            batch.append(
                key.sign(
                    {
                        "device_id": key.did,
                        "seq": seqs[key.did],
                        "ts": events.rfc3339(ts),
                        "kind": "air_quality",
                        "zone": zone,
                        "values": {"pm2_5": 7.5 + (n + i) % 10, "pm10": 14.0 + i % 7, "no2": 20.5},
                    }
                )
            )
        out[client].append(encode_json({"readings": batch}))
    return out


class Settlements:
    """Follows ``city.ledger.settled.v1`` from its beginning (a fresh platform's: the leg's settlements and
    the little before them): when each transaction's settlement was published."""

    def __init__(self, bootstrap: str) -> None:
        self.at: dict[str, float] = {}
        self._stop = threading.Event()
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "bench-e2e-settled", "enable.auto.commit": False}
        )
        name = LEDGER_SETTLED.name
        self._consumer.assign(
            [TopicPartition(name, p, OFFSET_BEGINNING) for p in range(LEDGER_SETTLED.partitions)]
        )
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer.consume(10000, 0.2):
                if message.error() is None:
                    tx = events.decode_json(message.value())["tx_id"]
                    self.at.setdefault(tx, message.timestamp()[1] / 1000)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def _processes(root: int, data_dir: Path) -> dict[str, list[psutil.Process]]:
    """The platform's processes by stage (children included), and this one. The embedded PostgreSQL
    detaches from ``smartcity up``: its server is found by its data dir."""
    stages: dict[str, list[psutil.Process]] = defaultdict(list)
    for process in psutil.process_iter():
        try:
            if process.name() == "postgres" and str(data_dir) in " ".join(process.cmdline()):
                stages["postgres"].append(process)
                stages["postgres"].extend(process.children(recursive=True))
        except psutil.Error:
            continue
    for process in psutil.Process(root).children(recursive=True):
        try:
            line = " ".join(process.cmdline())
        except psutil.Error:
            continue
        for stage, marker in (
            ("ingest", "services.ingest"),
            ("rewards", "services.rewards"),
            ("ledger", "services.ledger"),
            ("broker", "tansu"),
            ("postgres", "postgres"),
        ):
            if marker in line:
                stages[stage].append(process)
                stages[stage].extend(process.children(recursive=True))
                break
    stages["load generator"].append(psutil.Process())
    return stages


CpuSample = dict[str, dict[int, float]]
"""CPU seconds (user + system) of each process of each stage, by pid."""


def _cpu(root: int, data_dir: Path) -> CpuSample:
    """The CPU each of the platform's processes has spent, found afresh at each sample: PostgreSQL forks a
    backend for each connection a pool opens, some of them only once the load needs them."""
    out: CpuSample = defaultdict(dict)
    for stage, processes in _processes(root, data_dir).items():
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            out[stage][process.pid] = times.user + times.system
    return out


def _spent(later: CpuSample, earlier: CpuSample) -> dict[str, float]:
    """CPU seconds each stage spent between two samples (a process born since counts whole; one that ended
    in between is not seen)."""
    return {
        stage: sum(t - earlier.get(stage, {}).get(pid, 0.0) for pid, t in later.get(stage, {}).items())
        for stage in STAGES
    }


async def _drive(url: str, per_client: list[list[bytes]], sent: dict[int, float]) -> tuple[int, float]:
    """Post every client's batches back to back for DURATION_S; (readings accepted, seconds). `sent` gets
    when each batch (by its index in its client's list, times CLIENTS plus the client) was posted."""
    accepted = [0]
    rejected: list[dict] = []
    started = time.monotonic()
    deadline = started + DURATION_S

    async def client_loop(client: int, bodies: list[bytes]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            for index, body in enumerate(bodies):
                if time.monotonic() > deadline:
                    return
                if RATE:  # open loop: batch n is due n batches' worth of readings after the start
                    await asyncio.sleep(
                        max(0.0, started + (index * CLIENTS + client) * BATCH / RATE - time.monotonic())
                    )
                sent[index * CLIENTS + client] = time.time()
                response = await http.post(
                    "/v1/readings", content=body, headers={"content-type": "application/json"}
                )
                if response.status_code != 202:
                    raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")
                answer = response.json()
                accepted[0] += answer["accepted"]
                if answer["rejected"] and not rejected:
                    rejected.append(answer)

    await asyncio.gather(*(client_loop(c, bodies) for c, bodies in enumerate(per_client)))
    if rejected:
        print(f"  (ingest rejected readings, e.g. {str(rejected[0])[:400]})")
    return accepted[0], time.monotonic() - started


def _leg(workers: int, devices: list, registrations: list[dict]) -> tuple[Leg, list[list[bytes]]]:
    leg = Leg(workers)
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as scratch:
        env = {"REWARDS_POLICY_PATH": str(_policy(Path(scratch))), "LOG_LEVEL": "WARNING"}
        args = ("--no-simulate", "--rewards-workers", str(workers), "--drain-timeout", "0")
        with fresh_platform(*args, env=env, prefix="bench-e2e-") as platform:
            bootstrap = next(
                line.split("broker: ", 1)[1].split()[0] for line in platform.seen if "broker: " in line
            )
            asyncio.run(grant_consents(bootstrap, {owner for _, owner, _ in devices}))
            asyncio.run(register_devices(platform.url("ingest"), registrations))
            # Taken after the grants (a reading is decided on the consent in force at its time); fresh sequence
            # numbers for each leg's platform.
            bodies = _readings(devices, MAX_READINGS)
            # Before the load: working them out after it would compete with the drain it measures.
            tx_ids = _tx_ids(bodies)
            settlements = Settlements(bootstrap)
            root, data_dir = platform.process.pid, platform.data_dir
            quiet = _cpu(root, data_dir)
            time.sleep(IDLE_S)
            before = _cpu(root, data_dir)
            idle = _spent(before, quiet)
            leg.idle = sum(idle[stage] for stage in STAGES if stage != "load generator") / IDLE_S
            sent: dict[int, float] = {}
            leg.accepted, leg.seconds = asyncio.run(_drive(platform.url("ingest"), bodies, sent))
            load_end, during = time.time(), _cpu(root, data_dir)
            leg.busy = sum(_spent(during, before).values()) / leg.seconds
            expected = _reward_ids(tx_ids, sent)
            deadline = time.monotonic() + DRAIN_S
            while time.monotonic() < deadline and len(expected.keys() & settlements.at.keys()) < leg.accepted:
                time.sleep(0.5)
            # Before the scans below: they are this bench's reading of the records, not load on the platform.
            after = _cpu(root, data_dir)
            settlements.close()
            leg.unsettled = _why_unsettled(bootstrap, bodies, sent, settlements.at.keys())
            settled = {tx: at for tx, at in settlements.at.items() if tx in expected}
            leg.hops = _hops(bootstrap, expected, settled)
            platform.read_lines()
            leg.restarts = [line for line in platform.seen if "exited with" in line]
        leg.settled = len(settled)
        leg.settled_in_load = sum(1 for at in settled.values() if at <= load_end)
        first = min(sent.values())
        leg.settled_seconds = (max(settled.values()) - first) if settled else 0.0
        leg.latencies = [at - expected[tx] for tx, at in settled.items()]
        # CPU over the whole leg's work: the load and the drain of what it left, per reading settled.
        leg.cpu = _spent(after, before)
    return leg, bodies


def _scan(bootstrap: str, topic: Topic, each: Callable[[Message], None]) -> None:
    """Hand `each` every record of `topic` from its beginning (the leg's fresh platform's) to its end."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"bench-e2e-{topic.name}", "enable.partition.eof": True}
    )
    partitions = range(topic.partitions)
    consumer.assign([TopicPartition(topic.name, p, OFFSET_BEGINNING) for p in partitions])
    ended: set[int] = set()
    try:
        while len(ended) < len(partitions):
            for message in consumer.consume(10000, 1.0):
                if message.error() is not None:
                    ended.add(message.partition())
                else:
                    each(message)
    finally:
        consumer.close()


def _why_unsettled(
    bootstrap: str, bodies: list[list[bytes]], sent: dict[int, float], settled: Collection[str]
) -> Counter[str]:
    """Why the readings posted whose rewards were not settled earned none: their decisions' outcome and first
    reason on ``city.reward-decisions.v1``, or "no decision" (rejected by ingest, or not decided in time)."""
    missing = {}
    for client, batches in enumerate(bodies):
        for index, body in enumerate(batches):
            if index * CLIENTS + client in sent:
                for reading in events.decode_json(body)["readings"]:
                    rid = reading_id(reading["device_id"], reading["seq"])
                    if derive_tx_id(REWARD, reward_id(rid, RULE)) not in settled:
                        missing[rid] = "no decision"
    if not missing:
        return Counter()

    def note(message: Message) -> None:
        for line in message.value().split(b"\n"):
            decision = events.decode_json(line)
            if decision["reading_id"] in missing:
                reasons = decision["reasons"]
                missing[decision["reading_id"]] = f"{decision['outcome']}" + (
                    f": {reasons[0]['code']}" if reasons else ""
                )

    _scan(bootstrap, REWARD_DECISIONS, note)
    return Counter(missing.values())


def _hops(bootstrap: str, posted: dict[str, float], settled: dict[str, float]) -> dict[str, list[float]]:
    """Each settled reward's latency per hop, by the records' timestamps (read once the leg is drained, so
    as not to load the machine meanwhile): post -> its reading published by ingest, -> its decision
    published by rewards, -> its settlement published by the ledger (the block sealed)."""
    published: dict[str, float] = {}  # tx id -> when its reading was published
    decided: dict[str, float] = {}  # tx id -> when its decision was published

    def tx_of(reading: str) -> str:
        return derive_tx_id(REWARD, reward_id(reading, RULE))

    def reading_record(message: Message) -> None:
        at = message.timestamp()[1] / 1000
        for line in message.value().split(b"\n"):
            published[tx_of(events.decode_json(line)["reading_id"])] = at

    def decision_record(message: Message) -> None:
        at = message.timestamp()[1] / 1000
        for line in message.value().split(b"\n"):
            decided[tx_of(events.decode_json(line)["reading_id"])] = at

    _scan(bootstrap, READINGS, reading_record)
    _scan(bootstrap, REWARD_DECISIONS, decision_record)
    hops: dict[str, list[float]] = {"ingest": [], "rewards": [], "ledger": []}
    for tx, sealed in settled.items():
        if tx in published and tx in decided:
            hops["ingest"].append(published[tx] - posted[tx])
            hops["rewards"].append(decided[tx] - published[tx])
            hops["ledger"].append(sealed - decided[tx])
    return hops


def _tx_ids(bodies: list[list[bytes]]) -> list[list[list[str]]]:
    """Per client and batch, the ledger transaction ids of its readings' rewards."""
    return [
        [
            [
                derive_tx_id(REWARD, reward_id(reading_id(reading["device_id"], reading["seq"]), RULE))
                for reading in events.decode_json(body)["readings"]
            ]
            for body in batches
        ]
        for batches in bodies
    ]


def _reward_ids(tx_ids: list[list[list[str]]], sent: dict[int, float]) -> dict[str, float]:
    """The ledger transaction id of every posted reading's reward, with when the reading's batch was posted."""
    out = {}
    for client, batches in enumerate(tx_ids):
        for index, batch in enumerate(batches):
            at = sent.get(index * CLIENTS + client)
            if at is not None:
                out.update(dict.fromkeys(batch, at))
    return out


def _quantile(values: list[float], q: int) -> float:
    """The `q`-th of the 99 cut points of `values` (0.0 without two values)."""
    return statistics.quantiles(values, n=100)[q] if len(values) > 1 else 0.0


def _print(legs: list[Leg]) -> None:
    print(f"  {'rewards workers':<50}" + "".join(f"{leg.workers:>14}" for leg in legs))
    rows = [
        ("readings accepted /s (load)", [leg.accepted / leg.seconds for leg in legs], "{:>14,.0f}"),
        ("readings settled /s (first post to last seal)", [leg.settled_rate() for leg in legs], "{:>14,.0f}"),
        ("settled during the load /s", [leg.settled_in_load / leg.seconds for leg in legs], "{:>14,.0f}"),
        ("readings accepted", [leg.accepted for leg in legs], "{:>14,}"),
        ("readings settled", [leg.settled for leg in legs], "{:>14,}"),
    ]
    for label, values, fmt in rows:
        print(f"  {label:<50}" + "".join(fmt.format(v) for v in values))
    for q, name in ((49, "p50"), (98, "p99")):
        values = [_quantile(leg.latencies, q) for leg in legs]
        print(
            f"  {'post -> sealed settlement ' + name + ' (s)':<50}" + "".join(f"{v:>14.2f}" for v in values)
        )
    for hop in ("ingest", "rewards", "ledger"):
        for q, name in ((49, "p50"), (98, "p99")):
            values = [_quantile(leg.hops.get(hop, []), q) for leg in legs]
            label = f"  of which {hop} {name} (s)"
            print(f"  {label:<50}" + "".join(f"{v:>14.2f}" for v in values))
    for stage in STAGES:
        values = [leg.cpu.get(stage, 0.0) / max(1, leg.settled) * 1e6 for leg in legs]
        print(f"  {'CPU µs per reading settled: ' + stage:<50}" + "".join(f"{v:>14,.0f}" for v in values))
    print(
        f"  {'cores busy during the load (every stage)':<50}" + "".join(f"{leg.busy:>14.2f}" for leg in legs)
    )
    print(
        f"  {'cores busy idle, before the load (every stage)':<50}"
        + "".join(f"{leg.idle:>14.2f}" for leg in legs)
    )
    print(f"  {'cores on this machine':<50}{psutil.cpu_count():>14}")
    # The machine's speed drifts (a shared host: the bare verify rate moved by half within minutes), so each
    # leg is also put in units of its own baseline, measured right after it: those compare across legs and days.
    machine_rows = [
        (
            "baseline: bare Ed25519 verify (PyNaCl, 1 thread) /s",
            [leg.verify_rate for leg in legs],
            "{:>14,.0f}",
        ),
        ("CPU per reading in all (µs)", [leg.cpu_per_reading_s() * 1e6 for leg in legs], "{:>14,.0f}"),
        (
            "CPU per reading in all, in bare verifies",
            [leg.cpu_per_reading_s() * leg.verify_rate for leg in legs],
            "{:>14.1f}",
        ),
        (
            "settled /s per bare verify /s",
            [leg.settled_rate() / leg.verify_rate if leg.verify_rate else 0.0 for leg in legs],
            "{:>14.3f}",
        ),
    ]
    for label, values, fmt in machine_rows:
        print(f"  {label:<50}" + "".join(fmt.format(v) for v in values))
    for leg in legs:
        busiest = max((s for s in STAGES if s != "load generator"), key=lambda s: leg.cpu.get(s, 0.0))
        print(f"  {leg.workers} worker(s): most CPU spent by {busiest}")
    for leg in legs:
        for why, count in leg.unsettled.most_common():
            print(f"  {leg.workers} worker(s): {count:,} reading(s) posted and not settled: {why}")
        for line in leg.restarts:  # a restarted process's CPU before it exited is not counted
            print(f"  {leg.workers} worker(s): {line.strip()}")
    if len(legs) == 2 and all(leg.settled_rate() and leg.verify_rate for leg in legs):
        ratio = legs[1].settled_rate() / legs[0].settled_rate()
        same_machine = ratio * legs[0].verify_rate / legs[1].verify_rate
        print(f"  {'settled /s, 2 workers over 1':<50}{ratio:>14.2f}  ({same_machine:.2f} per baseline)")
    print(
        "  targets: 5,000 readings/s settled, p99 < 2 s; 2 workers >= 1.6 x 1 when rewards is the bottleneck"
    )


def main() -> None:
    print(
        f"e2e: ingest -> rewards -> ledger, {DURATION_S:.0f} s of load, {DEVICES} devices, batches of {BATCH}, "
        f"up to {PlatformSettings().readings_per_record} readings a city.readings.v1 record"
    )
    devices, registrations = _fleet()
    legs = []
    for workers in WORKERS:
        leg, bodies = _leg(workers, devices, registrations)
        leg.verify_rate = verify_rate_baseline(events.decode_json(bodies[0][0])["readings"])
        legs.append(leg)
    _print(legs)


if __name__ == "__main__":
    main()
