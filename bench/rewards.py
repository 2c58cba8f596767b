"""Rewards worker throughput: readings/s through one worker process with the full policy (verification,
decisions, caps, quality checks, zone windows, decisions then rewards acknowledged by the broker), beside a
bare Faust pass-through agent (each reading forwarded as is) over the same readings, in the same run, on a
fresh embedded broker.

``python -m bench rewards`` (``BENCH_REWARDS_READINGS`` readings, 50,000 by default; ``BENCH_REWARDS_ROUNDS``
alternating rounds of both, 2 by default). Each reading is a record of its own (``READINGS_PER_RECORD=1``), so
the figures are a record's costs; ingest publishes batch records, whose gain ``python -m bench e2e`` shows. The rate counts from the first output record to the last, so the
workers' start-up (group join, state rebuild) is left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import faust
import psutil
from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

from services.common import attestation, embedded, events, kinds, signing
from services.common.gc_tuning import tune_for_throughput
from services.common.ids import reading_id
from services.common.kafka import ensure_topics
from services.common.signing import Keypair
from services.common.topics import ALL_TOPICS, CONSENTS, READINGS, REWARD_DECISIONS, Topic
from services.simulator.fleet import Fleet
from tests.support.consents import record_of, signed_change
from tests.support.factories import INGEST

PASSTHROUGH = Topic("bench.passthrough.v1", key="device id", schema="readings.v1.json")
ROOT = Path(__file__).resolve().parents[1]
DEADLINE_S = 300.0
ROUNDS = int(os.environ.get("BENCH_REWARDS_ROUNDS", "2"))
RATE_LINE = "consumed readings/s: "
INGEST_BATCH = 500  # readings ingest attests with one signature (a request's or an MQTT batch's worth)
BEFORE_TRUST_MICROS = 492.0
"""CPU per reading of the full worker with the broker, measured on this machine on 2026-11-30 before readings
were attested (each reading's Ed25519 signature checked by the worker): the figure not to exceed."""


Record = tuple[str, bytes, bytes]
"""(key, value, attestation header) of a readings record."""


@dataclass(frozen=True)
class Load:
    """What a leg's broker holds before the worker starts: the owners' consents, then the readings."""

    consents: list[tuple[str, bytes]]
    readings: list[Record]


def readings(count: int, devices: int = 300, wallets: int = 40) -> Load:
    """`count` signed readings envelopes as ingest publishes them (attested in batches of `INGEST_BATCH`), a
    device's readings 3 s apart in the last hour (so bursts and caps bind as they would live, not on every
    reading), and the consents their owners gave the city for them, as the live pipeline has them: each owner's
    wallet bound to a person (ingest names it in the envelope), each kind's data granted long ago."""
    # Behaviour readings carry city devices' receipts, as the simulator's do, so the policy pays them.
    fleet = Fleet.generate("bench-rewards", wallets, devices, operator=Keypair.from_seed(bytes(32)))
    granted = {(d.owner.did, kinds.category(d.kind)): d.owner for d in fleet.devices}
    consents = [record_of(signed_change(owner, category)) for (_, category), owner in granted.items()]
    registrations = {d.device_id: d.registration() for d in fleet.devices}
    per_device = -(-count // devices)
    start = datetime.now(UTC) - timedelta(seconds=per_device * 3 + 60)
    out = []
    for i in range(count):
        device = fleet.devices[i % devices]
        taken = start + timedelta(seconds=(i // devices) * 3 + (i % devices) / devices)
        reading = device.next_reading(taken)
        envelope = {
            "reading_id": reading_id(device.device_id, reading["seq"]),
            "owner": device.owner.did,
            "received_at": events.rfc3339(taken + timedelta(milliseconds=400)),
            "reading": reading,
            "registration": registrations[device.device_id],
            "person": signing.sha256_hex(f"bench-person/{device.owner.did}".encode()),
        }
        out.append((device.device_id, attestation.encode(envelope)))
    attested: list[Record] = []
    for start in range(0, len(out), INGEST_BATCH):
        batch = out[start : start + INGEST_BATCH]
        headers = attestation.attest(INGEST, READINGS.name, [value for _, value in batch])
        attested.extend((key, value, h.encode()) for (key, value), h in zip(batch, headers, strict=True))
    return Load(consents, attested)


def publish(bootstrap: str, load: Load) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 20})
    for key, value in load.consents:
        producer.produce(CONSENTS.name, key=key, value=value)
    assert producer.flush(60) == 0
    for key, value, header in load.readings:
        while True:
            try:
                producer.produce(READINGS.name, key=key, value=value, headers=[(attestation.HEADER, header)])
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


class Counter:
    """Counts the values arriving on a topic, a batch record's lines each (the listed end offsets of the
    embedded broker lag behind)."""

    def __init__(self, bootstrap: str, topic: Topic) -> None:
        self.consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": "bench-watch", "fetch.wait.max.ms": 10}
        )
        self.consumer.assign([TopicPartition(topic.name, p, OFFSET_END) for p in range(topic.partitions)])
        self.count = 0

    def poll(self) -> int:
        self.count += sum(
            m.value().count(b"\n") + 1 for m in self.consumer.consume(10000, 0.02) if not m.error()
        )
        return self.count


@dataclass(frozen=True)
class Leg:
    """A leg's rate, and the CPU one reading cost the worker (with its child processes) and the broker."""

    rate: float
    worker_cpu_us: float
    broker_cpu_us: float


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


def measure(
    bootstrap: str,
    command: list[str],
    env: dict[str, str],
    out: Topic,
    count: int,
    log: Path,
    broker_pid: int,
) -> Leg:
    """Run a worker process until `count` records more are on `out`; readings/s from first to last, and the
    CPU spent meanwhile per reading (the machine is shared by both legs' processes: CPU is what limits)."""
    counter = Counter(bootstrap, out)
    counter.poll()  # assigned at the end before the worker starts
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, cwd=ROOT, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT
        )
    broker = psutil.Process(broker_pid)
    try:
        deadline = time.monotonic() + DEADLINE_S
        first = None
        while True:
            done = counter.poll()
            now = time.perf_counter()
            if first is None and done > 0:
                worker = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
                first = (now, done, _cpu_seconds(worker), _cpu_seconds([broker]))
            if done >= count:
                worker_cpu, broker_cpu = _cpu_seconds(worker), _cpu_seconds([broker])
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command} produced {done} of {count}; see {log}")
    finally:
        process.terminate()
        process.wait(30)
        counter.consumer.close()
    started, already, worker_before, broker_before = first
    measured = count - already
    return Leg(
        measured / (now - started),
        (worker_cpu - worker_before) / measured * 1e6,
        (broker_cpu - broker_before) / measured * 1e6,
    )


def bare_app() -> faust.App:
    """A Faust app with the worker's broker settings, for the baselines."""
    return faust.App(
        os.environ["BENCH_APP_ID"],
        broker=f"kafka://{os.environ['KAFKA_BOOTSTRAP_SERVERS']}",
        processing_guarantee="at_least_once",
        producer_acks=-1,
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        topic_allow_declare=False,
        topic_disable_leader=True,
        stream_wait_empty=False,
        web_enabled=False,
        datadir=os.environ["BENCH_DATADIR"],
    )


def run_worker(app: faust.App) -> None:
    worker = faust.Worker(app, quiet=True, loglevel="WARNING")
    worker.spinner = None
    tune_for_throughput()  # the rewards worker's process settings, so that only the work differs
    worker.execute_from_commandline()


def passthrough() -> None:
    """The baseline: a bare Faust agent forwarding every reading."""
    app = bare_app()
    source = app.topic(READINGS.name, key_serializer="raw", value_serializer="raw")

    @app.agent(source)
    async def forward(stream: faust.StreamT) -> None:
        # The worker's delivery guarantee with none of its work: forward a batch, wait for the broker's
        # acknowledgements, then ack the batch.
        async for batch in stream.noack_take(500, within=0.1):
            deliveries = [
                await app.producer.send(PASSTHROUGH.name, e.message.key, e.message.value, None, None, None)
                for e in batch
            ]
            await asyncio.gather(*deliveries)
            for event in batch:
                await stream.ack(event)

    run_worker(app)


def consume_only() -> None:
    """The framework's floor: a Faust agent that takes and acks every reading and does nothing else; it
    prints its own rate (first batch to last reading) once it has seen BENCH_COUNT readings."""
    app = bare_app()
    source = app.topic(READINGS.name, key_serializer="raw", value_serializer="raw")
    count = int(os.environ["BENCH_COUNT"])

    @app.agent(source)
    async def consume(stream: faust.StreamT) -> None:
        seen, first, started = 0, 0, 0.0
        async for batch in stream.noack_take(500, within=0.1):
            if not seen:
                first, started = len(batch), time.perf_counter()
            seen += len(batch)
            for event in batch:
                await stream.ack(event)
            if seen >= count:
                print(f"{RATE_LINE}{(seen - first) / (time.perf_counter() - started):.1f}", flush=True)
                break

    run_worker(app)


def consume_only_rate(load: Load, workdir: Path) -> float:
    """`consume_only` on a broker of its own holding just the readings."""
    port = embedded.free_port()
    broker = embedded.start_broker(port, workdir / "tansu-consume.log")
    bootstrap = f"127.0.0.1:{port}"
    log = workdir / "consume.log"
    try:
        ensure_topics(bootstrap, (*ALL_TOPICS, PASSTHROUGH))
        publish(bootstrap, load)
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "BENCH_APP_ID": "bench-consume",
            "BENCH_DATADIR": str(workdir / "faust-consume"),
            "BENCH_COUNT": str(len(load.readings)),
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.rewards", "consume"], cwd=ROOT, env=env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + DEADLINE_S
        while RATE_LINE not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the consume-only agent did not finish; see {log}")
            time.sleep(0.05)
        process.terminate()
        process.wait(30)
    finally:
        broker.terminate()
        broker.wait(10)
    return float(log.read_text().split(RATE_LINE)[1].split()[0])


def run_leg(
    load: Load,
    workdir: Path,
    name: str,
    command: list[str],
    env: dict[str, str],
    out: Topic,
) -> Leg:
    """One leg on a broker of its own holding just the readings: the embedded broker slows down as it fills,
    so legs sharing one would be measured against different brokers."""
    port = embedded.free_port()
    broker = embedded.start_broker(port, workdir / f"tansu-{name}.log")
    bootstrap = f"127.0.0.1:{port}"
    try:
        ensure_topics(bootstrap, (*ALL_TOPICS, PASSTHROUGH))
        publish(bootstrap, load)
        env = {
            **env,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SMARTCITY_DATA_DIR": str(workdir / name),
            "LOG_LEVEL": "WARNING",
            # One reading a record, as published here: the worker takes REWARDS_BATCH_SIZE records a batch.
            "READINGS_PER_RECORD": "1",
        }
        return measure(bootstrap, command, env, out, len(load.readings), workdir / f"{name}.log", broker.pid)
    finally:
        broker.terminate()
        broker.wait(10)


def main() -> None:
    count = int(os.environ.get("BENCH_REWARDS_READINGS", "50000"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-rewards-"))
    started = time.perf_counter()
    load = readings(count)
    print(
        f"rewards ({count:,} signed readings of 300 devices, signed in {time.perf_counter() - started:.1f}s)"
    )
    try:
        # Alternating rounds, each leg's best kept: on a shared machine the best round is the one least
        # disturbed by other work, for both legs alike.
        bare_legs: list[Leg] = []
        full_legs: list[Leg] = []
        for round_ in range(ROUNDS):
            bare_legs.append(
                run_leg(
                    load,
                    workdir,
                    f"passthrough-{round_}",
                    [sys.executable, "-m", "bench.rewards", "passthrough"],
                    {"BENCH_APP_ID": "bench-passthrough", "BENCH_DATADIR": str(workdir / f"faust-{round_}")},
                    PASSTHROUGH,
                )
            )
            full_legs.append(
                run_leg(
                    load,
                    workdir,
                    f"rewards-{round_}",
                    [sys.executable, "-m", "services.rewards"],
                    {
                        "REWARDS_APP_ID": "bench-rewards",
                        "REWARDS_WEB_PORT": str(embedded.free_port()),
                        "REWARDS_INGEST_ATTESTORS": f'["{INGEST.did}"]',
                        "REWARDS_LEDGER_URL": "",
                    },
                    REWARD_DECISIONS,
                )
            )
        floor = consume_only_rate(load, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    bare = max(bare_legs, key=lambda leg: leg.rate)
    full = max(full_legs, key=lambda leg: leg.rate)
    rounds = ", ".join(f"{b.rate:,.0f} / {f.rate:,.0f}" for b, f in zip(bare_legs, full_legs, strict=True))
    print(f"  rounds (pass-through / full): {rounds}")
    print(f"  {'bare Faust pass-through agent (best round)':<48} {bare.rate:>12,.0f} readings/s")
    print(f"  {'rewards worker, full policy (best round)':<48} {full.rate:>12,.0f} readings/s")
    print(f"  {'ratio full / pass-through':<48} {full.rate / bare.rate:>12.2f}")
    for name, leg in (("pass-through", bare), ("full", full)):
        print(
            f"  {'CPU per reading, ' + name + ' (worker + broker)':<48} "
            f"{leg.worker_cpu_us + leg.broker_cpu_us:>9.0f} us  "
            f"({leg.worker_cpu_us:.0f} + {leg.broker_cpu_us:.0f})"
        )
    full_cpu = full.worker_cpu_us + full.broker_cpu_us
    print(
        f"  {'CPU per reading before attestations (2026-11-30)':<48} {BEFORE_TRUST_MICROS:>9.0f} us  "
        f"(ratio now / then {full_cpu / BEFORE_TRUST_MICROS:.2f})"
    )
    print(
        f"  {'bare Faust take + ack, no output (the floor)':<48} {floor:>12,.0f} readings/s"
        f"  ({1e6 / floor:.0f} us a reading before any work)"
    )
    print(
        f"  (targets: >= 10,000 readings/s and >= 0.50 of the pass-through; load: {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__" and sys.argv[1:] == ["passthrough"]:
    passthrough()
elif __name__ == "__main__" and sys.argv[1:] == ["consume"]:
    consume_only()
