"""The rewards worker as a real process (``python -m services.rewards``) against the real broker."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from services.common import embedded, schemas, signing
from services.common.events import cloudevent_headers, headers_dict
from services.common.topics import READINGS, REWARDS, Topic
from tests.conftest import REPO_ROOT
from tests.support.topics import unique_group
from tests.unit.test_rewards_samples import Device

pytestmark = pytest.mark.integration

AMOUNT = 1234  # not the default, to see the setting arrive
DEADLINE_S = 30.0


@dataclass
class Worker:
    process: subprocess.Popen
    app_id: str
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM the worker (by its PID) and return its exit status; kill it if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        return self.process.returncode


def start_worker(kafka_bootstrap: str, workdir: Path) -> Worker:
    """Start ``python -m services.rewards`` in its own consumer group and wait until /readyz says ready."""
    port = embedded.free_port()
    app_id = unique_group("rewards-it")
    log_path = workdir / f"{app_id}.log"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REWARDS_WEB_PORT": str(port),
        "REWARDS_APP_ID": app_id,
        "REWARDS_FLAT_AMOUNT": str(AMOUNT),
        "SMARTCITY_DATA_DIR": str(workdir / "data"),
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.rewards"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    worker = Worker(process, app_id, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"the worker exited with {process.returncode}:\n{worker.log()}")
        try:
            if httpx.get(f"{worker.url}/readyz", timeout=2).status_code == 200:
                return worker
        except httpx.TransportError:
            pass  # not listening yet
        if time.monotonic() > deadline:
            worker.stop()
            pytest.fail(f"the worker was not ready within {DEADLINE_S}s:\n{worker.log()}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    started = start_worker(kafka_bootstrap, tmp_path_factory.mktemp("rewards"))
    yield started
    started.stop()


class Publisher:
    """Publishes readings records as ingest does and remembers where each landed."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap})
        self.positions: dict[str, tuple[int, int]] = {}

    def publish(self, key: str, value: bytes, label: str, ce_id: str) -> None:
        def delivered(err: Any, msg: Message) -> None:
            assert err is None, err
            self.positions[label] = (msg.partition(), msg.offset())

        headers = cloudevent_headers("city.reading.v1", "smartcity/ingest", ce_id)
        self.producer.produce(READINGS.name, key=key, value=value, headers=headers, on_delivery=delivered)

    def publish_envelope(self, device: Device, envelope: dict[str, Any], label: str) -> None:
        self.publish(device.did, json.dumps(envelope).encode(), label, envelope["reading_id"])

    def flush(self) -> None:
        assert self.producer.flush(10) == 0


def consume(
    bootstrap: str, topics: list[Topic], done: Callable[[list[Message]], bool], deadline_s: float = DEADLINE_S
) -> list[Message]:
    """Read `topics` from the beginning (no consumer group) until `done(messages)` or the deadline."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_group("rewards-reader")})
    consumer.assign(
        [TopicPartition(t.name, p, OFFSET_BEGINNING) for t in topics for p in range(t.partitions)]
    )
    messages: list[Message] = []
    deadline = time.monotonic() + deadline_s
    try:
        while not done(messages) and time.monotonic() < deadline:
            messages.extend(m for m in consumer.consume(500, 0.5) if not m.error())
    finally:
        consumer.close()
    return messages


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_one_reward_per_valid_reading_and_a_dlq_record_per_bad_one(worker: Worker, kafka_bootstrap: str):
    devices = [Device() for _ in range(3)]
    valid = {
        f"{i}/{seq}": (device, device.envelope(seq)) for i, device in enumerate(devices) for seq in range(4)
    }
    forged = devices[0].envelope(100)
    forged["reading"] = {**forged["reading"], "values": {"pm25": 1.0}}  # no longer what the device signed
    malformed_key = f"malformed-{uuid.uuid4().hex}"

    publisher = Publisher(kafka_bootstrap)
    for label, (device, envelope) in valid.items():
        publisher.publish_envelope(device, envelope, label)
    first_device, first_envelope = valid["0/0"]
    publisher.publish_envelope(first_device, first_envelope, "redelivered")  # as after an ingest retry
    publisher.publish_envelope(devices[0], forged, "forged")
    publisher.publish(malformed_key, b'{"reading_id": ', "malformed", "malformed")
    publisher.flush()

    owners = {device.owner.did for device in devices}
    dlq_keys = {devices[0].did, malformed_key}

    def ours(messages: list[Message]) -> tuple[list[Message], list[Message]]:
        rewards = [m for m in messages if m.topic() == REWARDS.name and m.key().decode() in owners]
        dead = [m for m in messages if m.topic() == READINGS.dlq.name and m.key().decode() in dlq_keys]
        return rewards, dead

    def all_arrived(messages: list[Message]) -> bool:
        rewards, dead = ours(messages)
        return len(rewards) >= len(valid) + 1 and len(dead) >= 2

    rewards, dead = ours(consume(kafka_bootstrap, [REWARDS, READINGS.dlq], all_arrived))

    # One reward per valid reading; the redelivered reading gave the same reward, byte for byte.
    by_reading: dict[str, list[Message]] = {}
    for message in rewards:
        by_reading.setdefault(json.loads(message.value())["reading_id"], []).append(message)
    assert set(by_reading) == {envelope["reading_id"] for _, envelope in valid.values()}
    duplicates = by_reading[first_envelope["reading_id"]]
    assert len(duplicates) == 2
    assert duplicates[0].value() == duplicates[1].value()
    assert all(
        len(messages) == 1 for rid, messages in by_reading.items() if rid != first_envelope["reading_id"]
    )

    for device, envelope in valid.values():
        message = by_reading[envelope["reading_id"]][0]
        reward = json.loads(message.value())
        schemas.validate(REWARDS, reward)
        assert message.value() == signing.canonical_bytes(reward)
        assert message.key().decode() == reward["wallet"] == device.owner.did
        assert reward["reward_id"] == sha256_hex(f"{envelope['reading_id']}/flat")
        assert reward["amount"] == AMOUNT and type(reward["amount"]) is int
        assert (reward["currency"], reward["rule"], reward["earned_at"]) == (
            "CITY",
            "flat",
            envelope["reading"]["ts"],
        )
        assert reward["evidence"] == {
            "reading": envelope["reading"],
            "registration": envelope["registration"],
        }
        headers = headers_dict(message.headers())
        assert headers["ce_id"] == reward["reward_id"]
        assert (headers["ce_type"], headers["ce_source"]) == ("city.reward.v1", "smartcity/rewards")

    # The forged and the malformed readings went to the DLQ with their reasons, and nothing else did.
    assert len(dead) == 2
    dlq = {m.key().decode(): (json.loads(m.value()), headers_dict(m.headers())) for m in dead}
    forged_dlq, forged_headers = dlq[devices[0].did]
    schemas.validate(READINGS.dlq, forged_dlq)
    assert forged_dlq["reason"].startswith("reading-signature: ")
    assert forged_dlq["consumer"] == worker.app_id
    assert (forged_dlq["source_topic"], forged_dlq["value"]) == (READINGS.name, json.dumps(forged))
    assert (forged_dlq["partition"], forged_dlq["offset"]) == publisher.positions["forged"]
    assert forged_headers["dlq_reason"] == forged_dlq["reason"]
    assert forged_headers["ce_id"] == forged["reading_id"]  # the source record's headers are kept
    malformed_dlq, _ = dlq[malformed_key]
    assert malformed_dlq["reason"].startswith("malformed-json: ")
    assert (malformed_dlq["partition"], malformed_dlq["offset"]) == publisher.positions["malformed"]

    # The worker counted what it did.
    metrics = httpx.get(f"{worker.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    samples = parse_metrics(metrics.text)
    assert samples['smartcity_rewards_produced_total{rule="flat"}'] >= len(valid) + 1
    assert samples['smartcity_rewards_rejections_total{reason="reading-signature"}'] >= 1
    assert samples['smartcity_rewards_rejections_total{reason="malformed-json"}'] >= 1
    assert samples["smartcity_rewards_batch_duration_seconds_count"] >= 1


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition as {'name{labels}': value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_health_readiness_and_metrics_answer(worker: Worker):
    assert httpx.get(f"{worker.url}/healthz", timeout=5).json() == {"status": "ok", "service": "rewards"}
    ready = httpx.get(f"{worker.url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"broker": True, "consumer": True}
    metrics = httpx.get(f"{worker.url}/metrics", timeout=5)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "smartcity_rewards_batch_duration_seconds" in metrics.text
    assert "smartcity_rewards_faust_messages_received" in metrics.text  # Faust's own sensors


def test_the_worker_stops_cleanly_on_sigterm_with_its_offsets_committed(kafka_bootstrap: str, tmp_path: Path):
    worker = start_worker(kafka_bootstrap, tmp_path)
    try:
        device = Device()
        publisher = Publisher(kafka_bootstrap)
        for seq in range(3):
            publisher.publish_envelope(device, device.envelope(seq), str(seq))
        publisher.flush()

        def rewarded(messages: list[Message]) -> bool:
            return sum(m.key().decode() == device.owner.did for m in messages) >= 3

        assert rewarded(consume(kafka_bootstrap, [REWARDS], rewarded))
        assert worker.stop() == 0, worker.log()
    finally:
        worker.stop()
    assert "Traceback" not in worker.log()

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": worker.app_id})
    try:
        committed = consumer.committed(
            [TopicPartition(READINGS.name, p) for p in range(READINGS.partitions)], 10
        )
    finally:
        consumer.close()
    next_offsets = {tp.partition: tp.offset for tp in committed}
    for partition, offset in publisher.positions.values():
        assert next_offsets[partition] > offset
