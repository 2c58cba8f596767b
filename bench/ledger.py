"""Ledger: rewards settled per second into sealed, signed blocks by one ledger process, beside a bare
PostgreSQL COPY of the same rows; and inclusion proofs at one million leaves.

Runs on its own embedded broker and PostgreSQL (a temporary directory), so nothing else is disturbed.

1. Signed rewards (300 devices of 40 wallets, as the simulator sends them) are published, as batch records, to
   ``city.rewards.v1``; a ledger (`services.ledger.app.create_app`, consumer + verification workers +
   sealer) settles them. The clock runs from the first sealed warm-up block to the block that seals the
   last reward, so the consumer-group join is left out but every signature check, settlement, sealing
   and signing is in. It also reports the CPU time one reward costs in each process involved (the ledger
   process, its verification workers, PostgreSQL and the broker), from /proc, to say how many busy cores
   a rate needs on a machine shared with other work.
2. Baseline: ``COPY`` of the very transaction rows the ledger wrote (tx_id, type, record, leaf_hash) into
   a table of the same shape on the same server.
3. A chain of 2**20 leaves (written directly: rows, Merkle nodes and a signed header), then inclusion
   proofs through the store (one index read + one node read, as the API serves them), each verified.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from services.common import db, embedded, merkle, topics
from services.common.events import now_rfc3339
from services.common.gc_tuning import tune_for_throughput
from services.common.kafka import KafkaProducer, ensure_topics
from services.common.settings import PlatformSettings
from services.common.signing import Keypair, verify
from services.ledger import chain, tree
from services.ledger.app import create_app
from services.ledger.keys import load_signing_key
from services.ledger.policies import policy_transaction
from services.ledger.queries import LedgerQueries
from services.ledger.settings import LedgerSettings
from services.ledger.store import LedgerStore
from services.ledger.transactions import derive_tx_id
from services.rewards.processor import reward_batch_records
from tests.support.factories import (
    ORACLE,
    TEST_ROLES,
    ingest_batches,
    policy_publication,
    signed_reward,
)

REWARDS = int(os.environ.get("BENCH_LEDGER_REWARDS", "100000"))
TICKS = os.sysconf("SC_CLK_TCK")
POLL_S = 0.02  # how often the clock looks at the tree size (it runs in the ledger's process: keep it rare)
WARMUP = 2000
PROOF_LEAVES = 1 << 20
PROOF_SAMPLES = 2000
TARGET = 20_000  # rewards/s (the target), to put the CPU figures in cores
ATTESTED_BATCH = 2000  # the rewards worker's largest batch
REWARDS_PER_RECORD = PlatformSettings().rewards_per_record
INGEST_BATCH = 500  # readings ingest attests with one signature (a request's or an MQTT batch's worth)
BEFORE_TRUST_MICROS = 258.0
"""CPU per reward measured on this machine on 2026-11-30 before rewards were attested (ledger process, verify
workers, PostgreSQL and broker; each reward's reading Ed25519-checked): the figure not to exceed."""
CHAIN_HEAD = 3  # genesis, authority bootstrap, the rewards' policy


def _rewards(count: int) -> list[dict]:
    wallets = [Keypair.generate() for _ in range(40)]
    devices = [(Keypair.generate(), wallets[i % 40]) for i in range(300)]
    rewards = [
        signed_reward(owner, device, seq=i, amount=1 + i % 1000)
        for i, (device, owner) in ((i, devices[i % 300]) for i in range(count))
    ]
    return ingest_batches(rewards, INGEST_BATCH)


async def _publish(bootstrap: str, rewards: list[dict]) -> None:
    """Publish the rewards as the rewards worker does: 2,000 a publish, as batch records of up to
    `REWARDS_PER_RECORD` rewards of one partition, attested by its oracle key."""
    producer = KafkaProducer(bootstrap, "bench-ledger")
    try:
        for start in range(0, len(rewards), ATTESTED_BATCH):
            records = reward_batch_records(
                ORACLE, rewards[start : start + ATTESTED_BATCH], REWARDS_PER_RECORD
            )
            errors = [e for e in await producer.send_batch(records) if e]
            assert not errors, errors[:3]
    finally:
        producer.close()


def _cpu_seconds(pids: list[int]) -> float:
    """user + system CPU seconds of these processes (all their threads) so far; gone processes count 0."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def _descendants(root: int) -> list[int]:
    """`root` and every process below it (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


async def _tree_size(store: LedgerStore) -> int:
    header = await LedgerQueries(store).latest_header()
    return 0 if header is None else header.tree_size


async def settle_rate(
    platform: PlatformSettings, postgres_pid: int, broker_pid: int
) -> tuple[float, float, int, dict[str, float], float]:
    """(rewards/s settled and sealed, bare COPY rows/s of the same rows, verification workers, the CPU
    microseconds per reward of the ledger process, its workers, PostgreSQL and the broker, and the records/s
    of a full verifier replay of the chain it sealed)."""
    print(f"  signing {WARMUP + REWARDS:,} rewards ...", flush=True)
    rewards = _rewards(WARMUP + REWARDS)
    tune_for_throughput()  # as `python -m services.ledger` does (services/common/serve.py)
    settings = LedgerSettings(consumer_group=f"bench-{uuid.uuid4().hex[:8]}", genesis_roles=TEST_ROLES)
    app = create_app(platform, settings)
    async with app.router.lifespan_context(app):
        store: LedgerStore = app.state.store
        await store.submit_policy(*policy_transaction(policy_publication(), now_rfc3339()))
        await _publish(platform.bootstrap_servers, rewards)
        del rewards  # not the ledger's: its garbage collector must not scan them
        while await _tree_size(store) < CHAIN_HEAD + WARMUP:  # the warm-up: the consumer has joined
            await asyncio.sleep(POLL_S)
        pool = app.state.verify_pool
        groups = {
            "ledger process": lambda: [os.getpid()],
            "verify workers": lambda: pool.pids if pool is not None else [],
            "PostgreSQL + broker": lambda: [*_descendants(postgres_pid), broker_pid],
        }
        before = {name: pids() for name, pids in groups.items()}
        cpu_before = {name: _cpu_seconds(pids) for name, pids in before.items()}
        started_size, started = await _tree_size(store), time.perf_counter()
        while (size := await _tree_size(store)) < CHAIN_HEAD + WARMUP + REWARDS:
            await asyncio.sleep(POLL_S)
        elapsed = time.perf_counter() - started
        settled = size - started_size
        # Processes started meanwhile (a new database connection) count whole: all their time is inside.
        cpu = {
            name: (_cpu_seconds(sorted({*before[name], *pids()})) - cpu_before[name]) / settled * 1e6
            for name, pids in groups.items()
        }
        async with store.connection() as conn:
            rows = await conn.fetch("SELECT tx_id, type, record, leaf_hash FROM transactions")
            await conn.execute("CREATE TABLE copy_baseline (LIKE transactions INCLUDING ALL)")
            copy_started = time.perf_counter()
            await conn.copy_records_to_table(
                "copy_baseline",
                records=[tuple(r) for r in rows],
                columns=["tx_id", "type", "record", "leaf_hash"],
            )
            copy_elapsed = time.perf_counter() - copy_started
            await conn.execute("DROP TABLE copy_baseline")
        replayed = await replay_rate(app, load_signing_key(settings, platform.data_dir).did)
    return settled / elapsed, len(rows) / copy_elapsed, settings.verify_workers, cpu, replayed


async def replay_rate(app: FastAPI, public_key: str) -> float:
    """Records/s of ``smartcity verify --replay`` over the whole chain, run as users run it: the command in a
    process of its own (with its pool of checking processes) against this ledger's API served over HTTP."""
    port = embedded.free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.05)
    try:
        command = [sys.executable, "-m", "services", "verify", "--ledger", f"http://127.0.0.1:{port}"]
        started = time.perf_counter()
        verifier = await asyncio.create_subprocess_exec(
            *command, "--public-key", public_key, "--replay", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await verifier.communicate()
        elapsed = time.perf_counter() - started
    finally:
        server.should_exit = True
        await serving
    line = out.decode().strip()
    if verifier.returncode != 0:
        raise RuntimeError(f"the verifier failed: {line}")
    return int(line.split(" records replayed")[0].rsplit(" ", 1)[1].replace(",", "")) / elapsed


def ed25519_verify_micros(samples: int = 5000) -> float:
    """CPU microseconds of one Ed25519 signature check (PyNaCl/libsodium) of a reading, as the ledger does it
    for every reward: the floor of a reward's cost that no restructuring removes."""
    device = Keypair.generate()
    reading = device.sign(
        {"device_id": device.did, "seq": 1, "kind": "air_quality", "values": {"pm25": 12.5}}
    )
    started = time.process_time()
    for _ in range(samples):
        verify(reading, "device_id")
    return (time.process_time() - started) / samples * 1e6


async def proofs(platform: PlatformSettings) -> tuple[list[float], float]:
    """Inclusion proof latencies (ms) at PROOF_LEAVES leaves, and the seconds spent writing the chain."""
    url = await db.prepare_database(platform, "ledger")
    engine = db.create_engine(url)
    store = LedgerStore(engine)
    keypair = Keypair.generate()
    written = time.perf_counter()
    tx_ids = [derive_tx_id("bench", str(i)) for i in range(PROOF_LEAVES)]
    records = [f'{{"tx_id":"{t}","type":"bench"}}'.encode() for t in tx_ids]
    hashes = [merkle.leaf_hash(r) for r in records]
    nodes, root = tree.append(0, hashes, {})
    header = chain.next_header(None, keypair, tree_size=PROOF_LEAVES, root_hash=root, timestamp=now_rfc3339())
    async with store.connection() as conn:
        await conn.copy_records_to_table(
            "transactions",
            records=[
                (i + 1, t, "bench", r, h)
                for i, (t, r, h) in enumerate(zip(tx_ids, records, hashes, strict=True))
            ],
            columns=["seq", "tx_id", "type", "record", "leaf_hash"],
        )
        await conn.copy_records_to_table(
            "leaves",
            records=[(i, i + 1, 0) for i in range(PROOF_LEAVES)],
            columns=["leaf_index", "seq", "block_height"],
        )
        await conn.copy_records_to_table("tree_nodes", records=nodes, columns=["level", "idx", "hash"])
        await conn.execute(
            "INSERT INTO blocks (height, tree_size, header) VALUES (0, $1, $2)",
            PROOF_LEAVES,
            header.canonical_bytes(),
        )
        await conn.execute("ANALYZE")
    written = time.perf_counter() - written
    rng = random.Random(5)
    latencies = []
    for _ in range(PROOF_SAMPLES):
        index = rng.randrange(PROOF_LEAVES)
        started = time.perf_counter()
        proof = await LedgerQueries(store).inclusion_proof(tx_ids[index])
        latencies.append((time.perf_counter() - started) * 1000)
        merkle.verify_inclusion(proof.leaf_hash, proof.leaf_index, proof.tree_size, proof.audit_path, root)
    await engine.dispose()
    return latencies, written


def main() -> None:
    print("ledger")
    load = os.getloadavg()
    print(f"  load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    workdir = Path(tempfile.mkdtemp(prefix="smartcity-bench-ledger-"))
    port = embedded.free_port()
    broker: subprocess.Popen | None = None
    try:
        broker = embedded.start_broker(port, workdir / "tansu.log")
        platform = PlatformSettings(
            kafka_bootstrap_servers=f"127.0.0.1:{port}",
            database_url=embedded.postgres_url(workdir),
            database_prefix="bench_",
            smartcity_data_dir=workdir / "data",
        )
        ensure_topics(platform.bootstrap_servers, topics.ALL_TOPICS)
        postgres_pid = int((workdir / "postgres" / "postmaster.pid").read_text().split()[0])
        rate, copy_rate, workers, cpu, replayed = asyncio.run(settle_rate(platform, postgres_pid, broker.pid))
        print(
            f"  {'rewards settled into sealed signed blocks':<52} {rate:>10,.0f} /s  ({workers} verify workers)"
        )
        print(f"  {'bare COPY of the same rows (baseline)':<52} {copy_rate:>10,.0f} /s")
        print(f"  {'ratio settled / bare COPY':<52} {rate / copy_rate:>10.2f}")
        for name, micros in cpu.items():
            print(
                f"  {'CPU per reward: ' + name:<52} {micros:>10.1f} us  ({micros * TARGET / 1e6:.2f} cores at {TARGET:,}/s)"
            )
        total = sum(cpu.values())
        print(
            f"  {'CPU per reward: total':<52} {total:>10.1f} us  (= {1e6 / total:,.0f} rewards/s per busy core)"
        )
        print(
            f"  {'CPU per reward before attestations (2026-11-30)':<52} {BEFORE_TRUST_MICROS:>10.1f} us  "
            f"(ratio now / then {total / BEFORE_TRUST_MICROS:.2f})"
        )
        verify = ed25519_verify_micros()
        print(
            f"  {'an Ed25519 check of a reading (no longer per reward)':<52} {verify:>10.1f} us  "
            f"({1e6 / verify:,.0f} bare verifies/s on one core)"
        )
        print(
            f"  {'verifier: records replayed per second (--replay)':<52} {replayed:>10,.0f} /s  "
            f"(ratio to bare Ed25519 verifies/s {replayed * verify / 1e6:.2f}; target 5,000/s; the CLI in its own processes)"
        )
        latencies, written = asyncio.run(
            proofs(platform.model_copy(update={"database_prefix": "bench_proofs_"}))
        )
        q = statistics.quantiles(latencies, n=100)
        print(f"  chain of {PROOF_LEAVES:,} leaves written in {written:.1f} s")
        print(
            f"  {'inclusion proof at ' + format(PROOF_LEAVES, ',') + ' leaves (served + verified)':<52} "
            f"p50 {q[49]:.2f} ms  p99 {q[98]:.2f} ms  max {max(latencies):.2f} ms"
        )
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        embedded.stop_postgres(workdir)
        shutil.rmtree(workdir, ignore_errors=True)
