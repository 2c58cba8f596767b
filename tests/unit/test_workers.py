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

from services.common.signing import Keypair
from services.common.workers import WorkerPool
from services.ledger.settlement import prepare_rewards
from services.ledger.transactions import Transaction
from services.rewards.readings import (
    MALFORMED_JSON,
    READING_ID,
    READING_SIGNATURE,
    AcceptedReading,
    InvalidReading,
    parse_all,
)
from tests.support.factories import signed_reward
from tests.unit.test_rewards_samples import Device

TS = "2026-11-21T12:00:00.000Z"
REPO_ROOT = Path(__file__).resolve().parents[2]


async def test_a_dead_worker_fails_one_batch_and_the_pool_recovers() -> None:
    owner = Keypair.generate()
    good = signed_reward(owner, seq=1)
    bad = signed_reward(owner, seq=2)
    bad["evidence"]["reading"]["seq"] = 3  # no longer what the device signed
    raw = [json.dumps(good).encode(), json.dumps(bad).encode()]
    pool = WorkerPool(workers=1)
    try:
        first, second = await pool.map(prepare_rewards, raw, TS)
        assert isinstance(first, Transaction) and first.record["reward"] == good
        assert second[0] == "bad-reading-signature"
        for pid in pool.pids:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await pool.map(prepare_rewards, raw, TS)
        again, _ = await pool.map(prepare_rewards, raw, TS)
        assert again == first
    finally:
        pool.shutdown()


async def test_a_batch_is_shared_across_workers_and_comes_back_in_order() -> None:
    owner = Keypair.generate()
    rewards = [signed_reward(owner, seq=i) for i in range(7)]
    pool = WorkerPool(workers=3)
    try:
        prepared = await pool.map(prepare_rewards, [json.dumps(r).encode() for r in rewards], TS)
        assert [tx.record["reward"] for tx in prepared] == rewards
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
    forged["reading"]["seq"] = 3  # no longer what the device signed
    pool = WorkerPool(workers=1)
    try:
        accepted, rejected, empty = await pool.map(
            parse_all, [json.dumps(good).encode(), json.dumps(forged).encode(), None]
        )
    finally:
        pool.shutdown()
    assert isinstance(accepted, AcceptedReading) and accepted.reading == good["reading"]
    assert isinstance(rejected, InvalidReading) and rejected.reason in {READING_ID, READING_SIGNATURE}
    assert isinstance(empty, InvalidReading) and empty.reason == MALFORMED_JSON


OWNER = """
import asyncio, sys, time
from services.common.workers import WorkerPool
from services.ledger.settlement import prepare_rewards

async def main() -> None:
    pool = WorkerPool(workers=2)
    await pool.map(prepare_rewards, [b"{}", b"{}"], "2026-11-21T12:00:00.000Z")
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
