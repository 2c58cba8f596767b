"""The worker pool: a batch shared across worker processes in order (rewards verified there, as the ledger
does), and a pool whose worker died replaced."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from services.common import attestation
from services.common.kafka import OutgoingRecord, attested
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.common.workers import WorkerPool
from services.ledger.rewards import prepare_rewards
from services.ledger.transactions import Transaction
from services.rewards.readings import MALFORMED_JSON, AcceptedReading, InvalidReading, parse_all
from tests.support.factories import INGEST, public, reward_records, signed_reward
from tests.support.modules import imported
from tests.unit.test_rewards_samples import Device

TS = "2026-11-21T12:00:00.000Z"


def rewards_as_consumed(rewards: list[dict]) -> list[tuple[bytes, str]]:
    """(value, attestation header) of each reward as the rewards worker publishes it."""
    return [(r.value, dict(r.headers)[attestation.HEADER].decode()) for r in reward_records(rewards)]


REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_a_dead_worker_fails_one_batch_and_the_pool_recovers() -> None:
    owner = Keypair.generate()
    good = signed_reward(owner, seq=1)
    bad = public(signed_reward(owner, seq=2), amount=10**9)  # no longer what the oracle attested
    raw = [
        rewards_as_consumed([good])[0],
        (rewards_as_consumed([bad])[0][0], rewards_as_consumed([good])[0][1]),
    ]
    pool = WorkerPool(workers=1)
    try:
        [first], [second] = await pool.map(prepare_rewards, raw, TS)
        assert Transaction.from_compact(first).record["reward"] == good["reward"]
        assert second[0] == "reward-not-attested"
        for pid in pool.pids:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await pool.map(prepare_rewards, raw, TS)
        [again], _ = await pool.map(prepare_rewards, raw, TS)
        assert again == first
    finally:
        pool.shutdown()


async def test_a_batch_is_shared_across_workers_and_comes_back_in_order() -> None:
    owner = Keypair.generate()
    rewards = [signed_reward(owner, seq=i) for i in range(7)]
    pool = WorkerPool(workers=3)
    try:
        prepared = await pool.map(prepare_rewards, rewards_as_consumed(rewards), TS)
        assert [Transaction.from_compact(tx).record["reward"] for [tx] in prepared] == [
            r["reward"] for r in rewards
        ]
        assert len(pool.pids) == 3
        assert await pool.map(prepare_rewards, [], TS) == []
    finally:
        pool.shutdown()


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="at least one worker"):
        WorkerPool(workers=0)


async def test_readings_checked_in_a_worker_come_back_accepted_or_with_the_reason() -> None:
    device = Device()
    good = device.envelope(1)
    forged = device.envelope(2)
    records = attested(INGEST, [OutgoingRecord(READINGS, device.did, v) for v in (good, forged, "x")])
    pairs = [(r.value, dict(r.headers)[attestation.HEADER]) for r in records]
    pairs[1] = (json.dumps({**forged, "owner": Keypair.generate().did}).encode(), pairs[1][1])
    pairs[2] = (b"{not json", attestation.attest(INGEST, READINGS.name, [b"{not json"])[0])
    # A batch record: two readings under one statement, the second not a reading at all.
    lines = [attestation.encode(device.envelope(3)), b'{"not":"a reading"}']
    pairs.append((b"\n".join(lines), attestation.attest_record(INGEST, READINGS.name, lines)))
    pool = WorkerPool(workers=1)
    try:
        [[(_, accepted)], [(_, rejected)], [(_, empty)], batch] = await pool.map(
            parse_all, pairs, frozenset({INGEST.did})
        )
    finally:
        pool.shutdown()
    assert isinstance(accepted, AcceptedReading) and accepted.reading == good["reading"]
    assert isinstance(rejected, InvalidReading) and rejected.reason == "not-attested"
    assert isinstance(empty, InvalidReading) and empty.reason == MALFORMED_JSON
    [(first_line, first), (second_line, second)] = batch
    assert (first_line, second_line) == tuple(lines)
    assert isinstance(first, AcceptedReading) and first.reading["seq"] == 3 and first.envelope == lines[0]
    assert attestation.verify(first.attestation, READINGS.name, lines[0]).signer == INGEST.did  # alone
    assert isinstance(second, InvalidReading) and second.reason == "schema"


async def test_a_worker_imports_what_it_runs_as_it_starts_not_on_its_first_batch() -> None:
    module = prepare_rewards.__module__
    for runs, expected in (([], [False]), ([prepare_rewards], [True])):
        pool = WorkerPool(workers=1, runs=runs)
        try:
            assert await pool.map(imported, [module]) == expected
        finally:
            pool.shutdown()


OWNER = """
import asyncio, sys, time
from services.common.workers import WorkerPool
from services.ledger.rewards import prepare_rewards

async def main() -> None:
    pool = WorkerPool(workers=2)
    await pool.map(prepare_rewards, [(b"{}", None), (b"{}", None)], "2026-11-21T12:00:00.000Z")
    print(*pool.pids, flush=True)
    time.sleep(60)

asyncio.run(main())
"""


def test_workers_do_not_outlive_an_owner_killed_outright() -> None:
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, cwd=REPO_ROOT, text=True)
    try:
        workers = [int(pid) for pid in owner.stdout.readline().split()]
        assert len(workers) == 2 and all(Path(f"/proc/{pid}").exists() for pid in workers)
    finally:
        owner.kill()
        owner.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
