"""SIGKILL of a ledger process while it settles a stream of rewards: after a restart every reward is paid
exactly once, and the chain still verifies with nothing but HTTP and the ledger's public key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from services.common.embedded import free_port
from services.common.kafka import KafkaProducer
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair, b64url_encode
from services.ledger.verifier import verify_ledger
from tests.conftest import REPO_ROOT
from tests.support.factories import AS_AUDITOR, TEST_ROLES, policy_publication, reward_records, signed_reward
from tests.support.topics import unique_group

pytestmark = pytest.mark.integration

REWARDS = 2500
DEADLINE_S = 90


@contextmanager
def ledger_process(env: dict[str, str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "services.ledger"],
        cwd=REPO_ROOT,
        env={**env, "LEDGER_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def tree_size(port: int) -> int:
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/v1/checkpoint", timeout=2)
    except httpx.TransportError:
        return 0
    return response.json()["tree_size"] if response.status_code == 200 else 0


def wait_for(probe, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll `probe` until truthy (a deadline, not a timing assertion)."""
    deadline = time.monotonic() + DEADLINE_S
    while not probe():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


async def test_sigkill_mid_settlement_loses_and_doubles_nothing(
    platform_settings: PlatformSettings, kafka_bootstrap: str
) -> None:
    wallets = [Keypair.generate() for _ in range(20)]
    devices = [Keypair.generate() for _ in range(100)]
    rewards = [
        signed_reward(wallets[i % 20], devices[i % 100], seq=i, amount=1 + i % 97) for i in range(REWARDS)
    ]

    key = Keypair.generate()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": platform_settings.bootstrap_servers,
        "DATABASE_URL": platform_settings.database_url or "",
        "DATABASE_PREFIX": platform_settings.database_prefix,
        "SMARTCITY_DATA_DIR": str(platform_settings.data_dir),
        "LEDGER_SIGNING_KEY": b64url_encode(key.seed),
        "LEDGER_CONSUMER_GROUP": unique_group("ledger-crash"),
        "LEDGER_CONSUMER_BATCH_SIZE": "250",
        "LEDGER_SEAL_INTERVAL_MS": "50",
        "LEDGER_GENESIS_ROLES": json.dumps(TEST_ROLES),
    }
    port = free_port()
    with ledger_process(env, port) as first:
        # The rewards' policy on the chain (genesis, authority, policy), then the rewards.
        wait_for(lambda: tree_size(port) >= 2, "the first ledger to seal its genesis")
        published = httpx.post(f"http://127.0.0.1:{port}/v1/policies", json=policy_publication(), timeout=10)
        assert published.status_code == 201, published.text
        producer = KafkaProducer(kafka_bootstrap, "test-crash")
        try:
            assert [e for e in await producer.send_batch(reward_records(rewards)) if e] == []
        finally:
            producer.close()
        # Killed as soon as part of the stream is settled, while it keeps consuming.
        wait_for(lambda: tree_size(port) > 3, "the first ledger to settle rewards")
        first.send_signal(signal.SIGKILL)
        first.wait()

    def settled(port: int) -> bool:
        """Every wallet paid its rewards (the topic may hold other tests' rewards, settled as well)."""
        for wallet in wallets:
            try:
                answer = httpx.get(
                    f"http://127.0.0.1:{port}/v1/accounts/{wallet.did}", auth=AS_AUDITOR, timeout=10
                )
            except httpx.TransportError:
                return False
            due = sum(r["reward"]["amount"] for r in rewards if r["reward"]["wallet"] == wallet.did)
            if answer.status_code != 200 or answer.json()["balances"].get("CITY", 0) < due:
                return False
        return True

    port = free_port()
    with ledger_process(env, port):
        wait_for(lambda: settled(port), "the restarted ledger to settle every reward")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            checkpoint = (await client.get("/v1/checkpoint")).json()
            # The genesis, the authority bootstrap, the policy, and each reward once, none twice (the topic
            # may hold other tests' rewards too, which this ledger settles as well).
            assert checkpoint["tree_size"] >= 3 + REWARDS
            for i, wallet in enumerate(wallets):
                mine = [r["reward"] for r in rewards if r["reward"]["wallet"] == wallet.did]
                balances = (await client.get(f"/v1/accounts/{wallet.did}", auth=AS_AUDITOR)).json()[
                    "balances"
                ]
                assert balances["CITY"] == sum(r["amount"] for r in mine), i
                history = await client.get(
                    f"/v1/accounts/{wallet.did}/transactions",
                    params={"limit": 1000},
                    auth=SignedReadAuth(wallet),
                )
                assert len(history.json()["transactions"]) == len(mine), i
            report = await verify_ledger(client, key.did, tx_ids=[], replay=True)
            # The chain may have grown meanwhile (other tests' rewards on the topic): at least this far.
            assert report.blocks >= checkpoint["height"] + 1
            assert report.transactions_checked == report.tree_size >= checkpoint["tree_size"]
