"""``python -m services.ledger`` as a real process: starts with a generated development key, seals the
genesis, and shuts down cleanly on SIGTERM; stuck settlement makes it not-ready, and it exits non-zero."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common import db
from services.common.embedded import free_port
from services.common.kafka import KafkaProducer
from services.common.liveness import EXIT_STUCK
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.ledger import chain
from services.ledger.keys import key_path, parse_seed
from tests.conftest import REPO_ROOT
from tests.support.factories import TEST_ROLES, reward_records, signed_reward
from tests.support.topics import unique_group

pytestmark = pytest.mark.integration


def _start_ledger(platform_settings: PlatformSettings, port: int, **extra_env: str) -> subprocess.Popen:
    """``python -m services.ledger``, its output in ``ledger.log`` of the data dir (a file: a pipe nobody
    reads while it runs would fill and block it)."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": platform_settings.bootstrap_servers,
        "DATABASE_URL": platform_settings.database_url or "",
        "DATABASE_PREFIX": platform_settings.database_prefix,
        "SMARTCITY_DATA_DIR": str(platform_settings.data_dir),
        "LEDGER_PORT": str(port),
        "LEDGER_CONSUMER_GROUP": unique_group("ledger-process"),
        **extra_env,
    }
    env.pop("LEDGER_SIGNING_KEY", None)
    platform_settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _log_path(platform_settings).open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.ledger"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _log_path(platform_settings: PlatformSettings) -> Path:
    return platform_settings.data_dir / "ledger.log"


def _stopped(process: subprocess.Popen, platform_settings: PlatformSettings, timeout_s: float) -> str:
    """Wait for the ledger to exit (kill it after `timeout_s`); its output."""
    try:
        process.wait(timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    return _log_path(platform_settings).read_text(errors="replace")


def _wait_ready(process: subprocess.Popen, port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("the ledger did not become ready")


def test_serves_with_a_generated_key_and_stops_cleanly(platform_settings: PlatformSettings) -> None:
    port = free_port()
    process = _start_ledger(platform_settings, port)
    try:
        header = None
        deadline = time.monotonic() + 60
        while header is None and time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                checkpoint = httpx.get(f"http://127.0.0.1:{port}/v1/checkpoint", timeout=2)
                if ready.status_code == 200 and checkpoint.status_code == 200:
                    header = chain.BlockHeader.from_json(checkpoint.json())
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        assert header is not None, "the ledger did not become ready with a checkpoint"
        path = key_path(platform_settings.data_dir)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        chain.verify_header(header, parse_seed(path.read_text()).did)
        assert header.height == 0 and header.tree_size >= 1  # the genesis is sealed

        process.send_signal(signal.SIGTERM)
    finally:
        output = _stopped(process, platform_settings, 30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught, so the status says SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output and "ERROR" not in output, output


def test_stuck_settlement_turns_the_ledger_not_ready_and_it_exits_to_be_restarted(
    platform_settings: PlatformSettings,
) -> None:
    """Settlement blocked behind a lock held on every ledger table: the consumer holds a reward and commits
    nothing, so after CONSUMER_STALL_S ``/readyz`` says which consumer is stuck and the process exits
    with `EXIT_STUCK` (a supervisor or Kubernetes starts it again)."""
    port = free_port()
    process = _start_ledger(
        platform_settings, port, CONSUMER_STALL_S="2", LEDGER_GENESIS_ROLES=json.dumps(TEST_ROLES)
    )
    try:
        _wait_ready(process, port)
        dsn = db.libpq_dsn(
            db.service_url(platform_settings.database_url or "", platform_settings.database_prefix + "ledger")
        )

        async def stall_settlement() -> dict:
            conn = await asyncpg.connect(dsn)
            try:
                async with conn.transaction():
                    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
                    names = ", ".join(f'"{t["tablename"]}"' for t in tables)
                    await conn.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")
                    producer = KafkaProducer(platform_settings.bootstrap_servers, "ledger-stall-test")
                    try:
                        reward = signed_reward(Keypair.generate(), seq=1, amount=5)
                        assert await producer.send_batch(reward_records([reward])) == [None]
                    finally:
                        producer.close()
                    async with httpx.AsyncClient(timeout=5) as http:
                        while (ready := await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                            await asyncio.sleep(0.2)
                    # Held until the process is on its way out: released sooner, the consumer would move again.
                    log, deadline = _log_path(platform_settings), time.monotonic() + 60
                    while "exiting with status" not in log.read_text(errors="replace"):
                        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                        await asyncio.sleep(0.2)
                    return ready.json()
            finally:
                await conn.close()  # the lock goes with it: the shutdown can finish

        body = asyncio.run(stall_settlement())
        assert body["checks"]["workers"] is False and body["checks"]["database"] is True
    finally:
        output = _stopped(process, platform_settings, 60)
    assert process.returncode == EXIT_STUCK, output
    assert "records in hand and committed nothing" in output, output
