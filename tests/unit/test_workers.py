"""The verification pool: rewards verified in worker processes, and a pool whose worker died replaced."""

from __future__ import annotations

import json
import os
import signal
from concurrent.futures.process import BrokenProcessPool

import pytest

from services.common.signing import Keypair
from services.ledger.settlement import VerificationPool
from services.ledger.transactions import Transaction
from tests.support.factories import signed_reward

TS = "2026-11-21T12:00:00.000Z"


async def test_a_dead_worker_fails_one_batch_and_the_pool_recovers() -> None:
    owner = Keypair.generate()
    good = signed_reward(owner, seq=1)
    bad = signed_reward(owner, seq=2)
    bad["evidence"]["reading"]["seq"] = 3  # no longer what the device signed
    raw = [json.dumps(good).encode(), json.dumps(bad).encode()]
    pool = VerificationPool(workers=1)
    try:
        first, second = await pool.prepare(raw, TS)
        assert isinstance(first, Transaction) and first.record["reward"] == good
        assert second[0] == "bad-reading-signature"
        for pid in pool.pids:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(BrokenProcessPool):
            await pool.prepare(raw, TS)
        again, _ = await pool.prepare(raw, TS)
        assert again == first
    finally:
        pool.shutdown()
