"""Ingest: signed readings accepted per second by one ingest process over HTTP, in batches of 500, beside two
baselines measured in the same run: the bare Ed25519 verify rate (PyNaCl, one thread) and a bare
confluent-kafka produce of the same envelope bytes to the same broker.

Runs on its own embedded broker and PostgreSQL (a temporary directory), so nothing else is disturbed.

1. One ingest process (``python -m services.ingest``, uvicorn, as `smartcity up` runs it) gets DEVICES
   devices registered (proven by the device, signed by the owner).
2. CLIENTS concurrent clients each own a share of the devices (so each device's readings arrive in
   sequence order) and post pre-signed, pre-encoded batches of 500 readings back to back. Every reading
   goes through every check (shape, size, clock, kind values, signature, registration, consent, rate
   limit, sequence under row lock) and is reported accepted only after the broker acknowledged it.
3. Baselines: PyNaCl verify over the readings' JCS bytes; a confluent-kafka producer (acks=all, the
   platform's producer settings) producing the envelopes ingest would publish, until every delivery report.

``BENCH_INGEST_READINGS`` (default 40000) sets the measured readings.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from confluent_kafka import Producer
from nacl.signing import VerifyKey

from services.common import consents, didkey, embedded, kinds, signing, topics
from services.common.events import encode_json, now_rfc3339
from services.common.kafka import KafkaProducer, OutgoingRecord, ensure_topics
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.ingest import readings
from services.ingest.devices import Device, sign_registration

BATCH = 500
CLIENTS = 4
DEVICES = 2000
READINGS = int(os.environ.get("BENCH_INGEST_READINGS", "40000"))
WARMUP_BATCHES = 4
BASELINE_TOPIC = topics.Topic("bench.ingest.baseline.v1", key="device id", schema="readings.v1.json")


def _fleet() -> tuple[list[tuple[Keypair, Keypair]], list[dict]]:
    owners = [Keypair.generate() for _ in range(40)]
    devices = [(Keypair.generate(), owners[i % 40]) for i in range(DEVICES)]
    registrations = [
        sign_registration(
            owner, key, {"device_id": key.did, "owner": owner.did, "kind": "air_quality", "zone": "old-town"}
        )
        for key, owner in devices
    ]
    return devices, registrations


def _batches(devices: list[tuple[Keypair, Keypair]], count: int) -> list[list[list[dict]]]:
    """Per client, its batches: readings of its own devices, each device's sequence rising batch to batch."""
    per_client = [devices[c::CLIENTS] for c in range(CLIENTS)]
    ts = now_rfc3339()
    out: list[list[list[dict]]] = [[] for _ in range(CLIENTS)]
    seqs = {key.did: 0 for key, _ in devices}
    for n in range(count):
        client = n % CLIENTS
        mine = per_client[client]
        batch = []
        for i in range(BATCH):
            key = mine[(len(out[client]) * BATCH + i) % len(mine)][0]
            seqs[key.did] += 1
            batch.append(
                key.sign(
                    {
                        "device_id": key.did,
                        "seq": seqs[key.did],
                        "ts": ts,
                        "kind": "air_quality",
                        "zone": "old-town",
                        "values": {"pm2_5": 7.5 + i % 10, "pm10": 14.0, "no2": 20.5},
                    }
                )
            )
        out[client].append(batch)
    return out


async def _wait_ready(url: str, process: subprocess.Popen) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=2) as client:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"ingest exited with {process.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("ingest did not get ready")


async def register_devices(url: str, registrations: list[dict]) -> None:
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(body: dict) -> None:
            async with gate:
                response = await client.post("/v1/devices", json=body)
                assert response.status_code in (200, 201), response.text

        await asyncio.gather(*(one(r) for r in registrations))


async def _post_all(url: str, per_client: list[list[bytes]]) -> tuple[float, int, list[float]]:
    """Post every client's batches back to back; (seconds, accepted, request latencies). Every reading is
    valid: a refused one stops the benchmark with its reason (a rate of refusals measures nothing)."""
    latencies: list[float] = []
    totals = [0]

    async def client_loop(bodies: list[bytes]) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            for body in bodies:
                started = time.perf_counter()
                response = await client.post(
                    "/v1/readings", content=body, headers={"content-type": "application/json"}
                )
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 202, response.text[:300]
                answer = response.json()
                if answer["rejected"]:
                    refused = next(r for r in answer["results"] if r["status"] == "rejected")
                    raise SystemExit(
                        f"ingest refused {answer['rejected']} readings of a batch: {refused['reason']}"
                    )
                totals[0] += answer["accepted"]

    started = time.perf_counter()
    await asyncio.gather(*(client_loop(bodies) for bodies in per_client))
    return time.perf_counter() - started, totals[0], latencies


def verify_rate_baseline(batch: list[dict]) -> float:
    items = [
        (
            VerifyKey(didkey.decode(r["device_id"])),
            signing.canonical_bytes(signing.unsigned(r)),
            signing.b64url_decode(r["sig"]),
        )
        for r in batch
    ]
    n = 0
    started = time.perf_counter()
    while n < 20000:
        for key, body, sig in items:
            key.verify(body, sig)
        n += len(items)
    return n / (time.perf_counter() - started)


def _produce_baseline(bootstrap: str, all_readings: list[dict], registrations: dict[str, dict]) -> float:
    received_at = now_rfc3339()
    values = []
    for r in all_readings:
        registration = registrations[r["device_id"]]
        device = Device(r["device_id"], registration["owner"], "air_quality", "old-town", registration, None)  # type: ignore[arg-type]
        values.append((r["device_id"].encode(), encode_json(readings.envelope(r, device, received_at))))
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "acks": "all",
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "compression.type": PlatformSettings().kafka_compression,
        }
    )
    acked = [0]

    def delivered(err, _msg) -> None:
        if err is None:
            acked[0] += 1

    started = time.perf_counter()
    for key, value in values:
        while True:
            try:
                producer.produce(BASELINE_TOPIC.name, key=key, value=value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)
    elapsed = time.perf_counter() - started
    assert acked[0] == len(values), f"{acked[0]} of {len(values)} acknowledged"
    return len(values) / elapsed


async def grant_consents(bootstrap: str, owners: set[Keypair]) -> None:
    """Every owner grants the city their environment data (air quality), on city.consents.v1, before ingest
    starts: its consent view reads them at startup, and ingest refuses readings without them."""
    producer = KafkaProducer(bootstrap, client_id="bench-consents")
    try:
        for owner in owners:
            signed = owner.sign(
                {
                    "subject": owner.did,
                    "category": kinds.category("air_quality"),
                    "grantee": consents.CITY,
                    "action": "grant",
                    "purpose": "benchmark",
                    "issued_at": now_rfc3339(),
                }
            )
            change = consents.check_consent(signed)
            await producer.send(OutgoingRecord(topics.CONSENTS, change.key, change.record(datetime.now(UTC))))
    finally:
        await asyncio.to_thread(producer.close)


async def _run(workdir: Path, bootstrap: str, database_url: str) -> None:
    port = embedded.free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "SMARTCITY_DATA_DIR": str(workdir),
        "INGEST_PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    devices, registrations = _fleet()
    # Consents first: ingest checks the one in force at each reading's own time, so readings stamped before
    # their owners granted would all be refused.
    await grant_consents(bootstrap, {owner for _key, owner in devices})
    batches = _batches(devices, READINGS // BATCH + WARMUP_BATCHES * CLIENTS)
    bodies = [[encode_json({"readings": b}) for b in client] for client in batches]
    with (workdir / "ingest.log").open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.ingest"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        await _wait_ready(url, process)
        await register_devices(url, registrations)
        await _post_all(url, [client[:WARMUP_BATCHES] for client in bodies])
        elapsed, accepted, latencies = await _post_all(url, [client[WARMUP_BATCHES:] for client in bodies])
    finally:
        process.terminate()
        process.wait(30)
    all_readings = [r for client in batches for batch in client[WARMUP_BATCHES:] for r in batch]
    verify_rate = verify_rate_baseline(batches[0][0])
    produce_rate = _produce_baseline(bootstrap, all_readings, {r["device_id"]: r for r in registrations})
    rate = accepted / elapsed
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"  {'readings accepted':<52} {accepted:>12,}")
    print(f"  {'ingest over HTTP, accepted (batches of 500, 4 clients)':<52} {rate:>12,.0f} /s")
    print(
        f"  {'  request latency p50 / p99':<52} {quantiles[49] * 1000:>9,.1f} ms / {quantiles[98] * 1000:,.1f} ms"
    )
    print(f"  {'baseline: bare Ed25519 verify (PyNaCl, 1 thread)':<52} {verify_rate:>12,.0f} /s")
    print(f"  {'baseline: bare confluent-kafka produce, same bytes':<52} {produce_rate:>12,.0f} /s")
    print(f"  {'ratio ingest / bare verify':<52} {rate / verify_rate:>12.2f}")
    print(f"  {'ratio ingest / bare produce':<52} {rate / produce_rate:>12.2f}")
    print(f"  {'target (one process, 2 cores)':<52} {5000:>12,} /s {'met' if rate >= 5000 else 'NOT met'}")
    print(f"  load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    print(f"ingest ({READINGS:,} readings in batches of {BATCH} from {DEVICES:,} devices)")
    workdir = Path(tempfile.mkdtemp(prefix="smartcity-bench-ingest-"))
    port = embedded.free_port()
    broker: subprocess.Popen | None = None
    try:
        broker = embedded.start_broker(port, workdir / "tansu.log")
        bootstrap = f"127.0.0.1:{port}"
        ensure_topics(bootstrap, [*topics.ALL_TOPICS, BASELINE_TOPIC])
        asyncio.run(_run(workdir, bootstrap, embedded.postgres_url(workdir)))
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        embedded.stop_postgres(workdir)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
