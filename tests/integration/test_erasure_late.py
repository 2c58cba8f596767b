"""What reaches the ledger and ingest after a person's erasure, on the real broker and PostgreSQL: a reward of the
erased wallet still waiting on city.rewards.v1 settles with its evidence erased already, while another wallet's
reward beside it keeps its evidence, and the chain verifies with ``smartcity verify`` in public and auditor mode;
ingest keeps no decision on a reading of a device the erasure erased, even one dated after the erasure, and keeps
those of a device the person registers afterwards."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.common.events import rfc3339
from services.common.kafka import KafkaProducer
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair, b64url_encode
from tests.integration.test_erasure import disclosures, erasure, platform
from tests.integration.test_ingest_decisions import decision
from tests.integration.test_ledger_audit import EXACT
from tests.support import ingest as ingest_objects
from tests.support.factories import (
    AS_AUDITOR,
    AUDITOR,
    decisions_record,
    policy_publication,
    reward_records,
    signed_reward,
)
from tests.support.waiting import until

pytestmark = pytest.mark.integration


async def smartcity_verify(ledger_url: str, public_key: str, *options: str) -> str:
    """Run ``smartcity verify --replay`` on the ledger at `ledger_url`; its output, asserting it passed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services",
        "verify",
        "--ledger",
        ledger_url,
        "--public-key",
        public_key,
        "--replay",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    text = output.decode()
    assert process.returncode == 0, text
    assert text.startswith("OK: "), text
    return text


async def test_a_reward_settled_after_the_erasure_is_stored_erased_and_ingest_keeps_nothing_late(
    platform_settings: PlatformSettings, kafka_bootstrap: str, tmp_path: Path
) -> None:
    caseworker, sender, alice, bob = (Keypair.generate() for _ in range(4))
    device = Keypair.generate()
    producer = KafkaProducer(kafka_bootstrap, "erasure-late-test")
    try:
        async with platform(platform_settings, caseworker, sender) as (identity, ingest, ledger, ledger_key):
            assert (await ledger.post("/v1/policies", json=policy_publication(EXACT))).status_code == 201
            located = ingest_objects.registration(alice, device, location={"lat": 52.37, "lon": 4.9})
            assert (await ingest.post("/v1/devices", json=located)).status_code == 201

            # Alice asks for erasure before anything of hers reached the ledger: nothing there to erase yet.
            answer = await identity.post("/v1/erasures", json=erasure(alice))
            assert answer.status_code == 200 and answer.json()["status"] == "completed", answer.text

            # Then a reward of hers that was waiting on city.rewards.v1 arrives, with Bob's beside it.
            rewards = [signed_reward(alice, seq=7, policy=EXACT), signed_reward(bob, seq=7, policy=EXACT)]
            await producer.send_batch(reward_records(rewards))

            async def sealed() -> list[dict]:
                txs = [
                    t
                    for wallet in (alice, bob)
                    for t in (
                        await ledger.get(f"/v1/accounts/{wallet.did}/transactions", auth=AS_AUDITOR)
                    ).json()["transactions"]
                ]
                return txs if len(txs) == 2 and all(t["leaf_index"] is not None for t in txs) else []

            await until(sealed, "both rewards sealed")
            # It is paid (on the chain), but its evidence was never kept: erased as of her erasure.
            [alices] = await disclosures(ledger, alice)
            assert set(alices) == {"tx_id", "erased_at"}, alices
            [bobs] = await disclosures(ledger, bob)
            assert {"salt", "envelope", "attestation"} <= set(bobs) and "erased_at" not in bobs
            balance = (await ledger.get(f"/v1/accounts/{alice.did}", auth=SignedReadAuth(alice))).json()
            assert balance["balances"]["CITY"] == rewards[0]["reward"]["amount"], balance

            # The chain verifies with the command a citizen runs: public mode, then auditor mode (with --deep).
            ledger_url = str(ledger.base_url).rstrip("/")
            await smartcity_verify(ledger_url, ledger_key)
            auditor_key = tmp_path / "auditor.key"
            auditor_key.write_text(b64url_encode(AUDITOR.seed))
            await smartcity_verify(ledger_url, ledger_key, "--deep", "--auditor-key", str(auditor_key))

            # Ingest: the erased device's readings are refused from now on, and a decision on one of its readings
            # accepted just before the erasure (in flight, dated a little ahead) is not kept; the decisions of a
            # device Alice registers after her erasure are hers to read.
            late = {
                **decision(alice.did, device.did, 3),
                "ts": rfc3339(datetime.now(UTC) + timedelta(minutes=1)),
            }
            refused = await ingest.post(
                "/v1/readings", json={"readings": [ingest_objects.reading(device, 9)]}
            )
            assert refused.json()["results"][0]["status"] == "rejected", refused.text
            newer = Keypair.generate()
            assert (
                await ingest.post("/v1/devices", json=ingest_objects.registration(alice, newer))
            ).status_code == 201
            kept = {**decision(alice.did, newer.did, 1), "ts": rfc3339(datetime.now(UTC))}
            await producer.send_batch(
                [
                    decisions_record(device.did, [late]),
                    decisions_record(device.did, [kept]),  # same partition, after it
                ]
            )

            async def decisions_of_alice() -> list[dict]:
                found = await ingest.get(f"/v1/wallets/{alice.did}/decisions", auth=SignedReadAuth(alice))
                return found.json()["decisions"]

            [only] = await until(decisions_of_alice, "the decision of alice's new device")
            assert only["device_id"] == newer.did
    finally:
        producer.close()
