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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, Message, Producer, TopicPartition

from services.common import attestation, embedded, kinds, roles, schemas
from services.common.events import cloudevent_headers, headers_dict
from services.common.kafka import partition_of
from services.common.liveness import EXIT_STUCK
from services.common.roles import Role
from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.common.topics import CONSENTS, READINGS, REWARD_DECISIONS, REWARDS, ZONE_STATS, Topic
from services.ingest.readings import partition_key
from services.ledger.rewards import verify_disclosure
from services.rewards.openapi import document as openapi_document
from tests.conftest import REPO_ROOT
from tests.support import consents
from tests.support.factories import INGEST
from tests.support.topics import PublishedReward, rewards_of, unique_group
from tests.unit.test_rewards_samples import Device, policy_document

pytestmark = pytest.mark.integration

AMOUNT = 1234  # not the city's, to see the policy file arrive
RULE = "data.air_quality"
DEADLINE_S = 30.0


@dataclass
class Worker:
    process: subprocess.Popen
    app_id: str
    url: str
    log_path: Path
    data_dir: Path

    @property
    def oracle_did(self) -> str:
        """The did of the key attesting its rewards (its data dir's development key)."""
        return roles.service_key(None, self.data_dir, Role.REWARDS_ORACLE).did

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


def write_policy(path: Path, version: str = "it-1", **changes: Any) -> Path:
    """A policy file paying AMOUNT per air-quality reading, with caps no test reaches."""
    document = policy_document(version, caps={"device_per_hour": 10**9, "wallet_per_day": 10**9}, **changes)
    document["kinds"]["air_quality"]["data_reward"] = AMOUNT
    path.write_text(yaml.safe_dump(document))
    return path


def start_worker(
    kafka_bootstrap: str,
    workdir: Path,
    policy: Path | None = None,
    app_id: str | None = None,
    ready: bool = True,
    **extra_env: str,
) -> Worker:
    """Start ``python -m services.rewards`` (in its own consumer group unless `app_id` names one) and, if
    `ready`, wait until /readyz says ready."""
    port = embedded.free_port()
    app_id = app_id or unique_group("rewards-it")
    log_path = workdir / f"{app_id}-{port}.log"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REWARDS_WEB_PORT": str(port),
        "REWARDS_APP_ID": app_id,
        "REWARDS_POLICY_PATH": str(policy or write_policy(workdir / f"{app_id}-policy.yaml")),
        "SMARTCITY_DATA_DIR": str(workdir / "data"),
        "REWARDS_INGEST_ATTESTORS": json.dumps([INGEST.did]),
        "REWARDS_LEDGER_URL": "",  # no ledger: its policy is not published (the kill test runs one)
        **extra_env,
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
    worker = Worker(process, app_id, f"http://127.0.0.1:{port}", log_path, workdir / "data")
    deadline = time.monotonic() + DEADLINE_S
    while ready:
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
    return worker


@pytest.fixture
def worker(request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path: Path) -> Iterator[Worker]:
    """A worker; a test parametrised indirectly names its `REWARDS_VERIFY_WORKERS` (else the default)."""
    # One test at a time: a worker of another group would decide (and reward) the same readings.
    pools = getattr(request, "param", None)
    started = start_worker(
        kafka_bootstrap, tmp_path, **({} if pools is None else {"REWARDS_VERIFY_WORKERS": pools})
    )
    yield started
    started.stop()


class Publisher:
    """Publishes readings records as ingest does (attested by the tests' ingest key) and remembers where
    each landed."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = Producer({"bootstrap.servers": bootstrap})
        self.positions: dict[str, tuple[int, int]] = {}
        self.consented: set[tuple[str, str]] = set()

    def publish(self, key: str, value: bytes, label: str, ce_id: str) -> None:
        def delivered(err: Any, msg: Message) -> None:
            assert err is None, err
            self.positions[label] = (msg.partition(), msg.offset())

        headers = cloudevent_headers("city.reading.v1", "smartcity/ingest", ce_id)
        [attested] = attestation.attest(INGEST, READINGS.name, [value])
        headers.append((attestation.HEADER, attested.encode()))
        self.producer.produce(READINGS.name, key=key, value=value, headers=headers, on_delivery=delivered)

    def publish_envelope(self, device: Device, envelope: dict[str, Any], label: str) -> None:
        """Publish an attested reading, its owner's standing consent to its category first (the worker
        decides on the consent in force at the reading's time)."""
        self.consent(device.owner, kinds.category(device.kind))
        self.publish(partition_key(envelope), attestation.encode(envelope), label, envelope["reading_id"])

    def consent(self, owner: Keypair, category: str) -> None:
        """Grant the city `category` for `owner` since long ago (once), acknowledged before what follows."""
        if (owner.did, category) in self.consented:
            return
        key, value = consents.record_of(consents.signed_change(owner, category))
        self.producer.produce(CONSENTS.name, key=key, value=value)
        self.flush()
        self.consented.add((owner.did, category))

    def publish_changed(self, device: Device, envelope: dict[str, Any], attested: dict[str, Any]) -> str:
        """Publish `envelope` under the attestation of `attested`, another envelope (what an attacker who
        changed a record after ingest attested it sends); returns the label."""
        label = f"changed-{uuid.uuid4().hex}"
        [header] = attestation.attest(INGEST, READINGS.name, [attestation.encode(attested)])
        headers = cloudevent_headers("city.reading.v1", "smartcity/ingest", envelope["reading_id"])
        headers.append((attestation.HEADER, header.encode()))

        def delivered(err: Any, msg: Message) -> None:
            assert err is None, err
            self.positions[label] = (msg.partition(), msg.offset())

        value = attestation.encode(envelope)
        self.producer.produce(
            READINGS.name, key=device.did, value=value, headers=headers, on_delivery=delivered
        )
        return label

    def flush(self) -> None:
        assert self.producer.flush(10) == 0


def consume(
    bootstrap: str, topics: list[Topic], done: Callable[[list[Message]], bool], deadline_s: float = DEADLINE_S
) -> list[Message]:
    """Read `topics` from the beginning (no consumer group) until `done(messages)` or the deadline; records
    that are not JSON (poison other tests put on the shared topics) are left out."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_group("rewards-reader")})
    consumer.assign(
        [TopicPartition(t.name, p, OFFSET_BEGINNING) for t in topics for p in range(t.partitions)]
    )
    messages: list[Message] = []
    deadline = time.monotonic() + deadline_s
    try:
        while not done(messages) and time.monotonic() < deadline:
            messages.extend(m for m in consumer.consume(500, 0.5) if not m.error() and _is_json(m.value()))
    finally:
        consumer.close()
    return messages


def _is_json(value: bytes | None) -> bool:
    """A JSON value, or lines of them (a batch record)."""
    try:
        json.loads(value or b"")
    except ValueError:
        try:
            [json.loads(line) for line in (value or b"").split(b"\n")]
        except ValueError:
            return False
    return True


def lines_of(message: Message) -> list[dict[str, Any]]:
    """The values a record carries: a batch record's lines, or its one value."""
    return [json.loads(line) for line in (message.value() or b"").split(b"\n")]


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_one_reward_per_valid_reading_and_a_dlq_record_per_bad_one(worker: Worker, kafka_bootstrap: str):
    devices = [Device() for _ in range(3)]
    valid = {
        f"{i}/{seq}": (device, device.envelope(seq)) for i, device in enumerate(devices) for seq in range(4)
    }
    attested = devices[0].envelope(100)
    forged = {**attested, "reading": {**attested["reading"], "values": {"pm25": 1.0}}}  # changed since
    malformed_key = f"malformed-{uuid.uuid4().hex}"

    publisher = Publisher(kafka_bootstrap)
    for label, (device, envelope) in valid.items():
        publisher.publish_envelope(device, envelope, label)
    first_device, first_envelope = valid["0/0"]
    publisher.publish_envelope(first_device, first_envelope, "redelivered")  # as after an ingest retry
    forged_label = publisher.publish_changed(devices[0], forged, attested)
    publisher.publish(malformed_key, b'{"reading_id": ', "malformed", "malformed")
    publisher.flush()

    owners = {device.owner.did for device in devices}
    dlq_keys = {devices[0].did, malformed_key}

    def ours(messages: list[Message]) -> tuple[list[PublishedReward], list[Message]]:
        rewards = [r for r in rewards_of(messages) if r.reward["wallet"] in owners]
        dead = [m for m in messages if m.topic() == READINGS.dlq.name and m.key().decode() in dlq_keys]
        return rewards, dead

    def all_arrived(messages: list[Message]) -> bool:
        rewards, dead = ours(messages)
        return len(rewards) >= len(valid) + 1 and len(dead) >= 2

    rewards, dead = ours(consume(kafka_bootstrap, [REWARDS, READINGS.dlq], all_arrived))

    # One reward per valid reading; the redelivered reading gave the same reward, but for ingest's new
    # attestation (which the ledger does not count as content).
    by_reading: dict[str, list[PublishedReward]] = {}
    for published in rewards:
        by_reading.setdefault(published.reward["reading_id"], []).append(published)
    assert set(by_reading) == {envelope["reading_id"] for _, envelope in valid.values()}
    duplicates = by_reading[first_envelope["reading_id"]]
    assert len(duplicates) == 2
    twins = [json.loads(json.dumps(r.value)) for r in duplicates]
    for twin in twins:
        del twin["disclosure"]["attestation"]
    assert twins[0] == twins[1]
    assert all(
        len(messages) == 1 for rid, messages in by_reading.items() if rid != first_envelope["reading_id"]
    )

    for device, envelope in valid.values():
        published = by_reading[envelope["reading_id"]][0]
        message, value = published.message, published.value
        schemas.validate(REWARDS, value)
        reward = value["reward"]
        # A record carries the rewards of one partition: keyed by its first reward's wallet, which hashes there.
        assert reward["wallet"] == device.owner.did
        assert partition_of(reward["wallet"], REWARDS.partitions) == message.partition()
        assert reward["reward_id"] == sha256_hex(f"{envelope['reading_id']}/{RULE}")
        assert reward["amount"] == AMOUNT and type(reward["amount"]) is int
        assert (reward["currency"], reward["rule"], reward["policy_version"], reward["earned_at"]) == (
            "CITY",
            RULE,
            "it-1",
            envelope["reading"]["ts"],
        )
        # The evidence is the envelope ingest attested, byte for byte, opening the public reward's commitment.
        opened, ingest = verify_disclosure(reward, value["disclosure"])
        assert opened == envelope and ingest == INGEST.did
        # The public reward is attested by the worker's oracle key: its own attestation checks it alone.
        covered = attestation.encode(REWARDS.attested_part(value))
        assert attestation.verify(published.attestation, REWARDS.name, covered).signer == worker.oracle_did
        headers = headers_dict(message.headers())
        first = json.loads(attestation.record_lines(message.value())[0])["reward"]
        assert headers["ce_id"] == first["reward_id"] and message.key().decode() == first["wallet"]
        assert headers["ce_source"] == "smartcity/rewards"
        assert headers["ce_type"] in ("city.reward.v1", "city.rewards-batch.v1")

    # The forged and the malformed readings went to the DLQ with their reasons, and nothing else did.
    assert len(dead) == 2
    dlq = {m.key().decode(): (json.loads(m.value()), headers_dict(m.headers())) for m in dead}
    forged_dlq, forged_headers = dlq[devices[0].did]
    schemas.validate(READINGS.dlq, forged_dlq)
    assert forged_dlq["reason"].startswith("not-attested: ")
    assert forged_dlq["consumer"] == worker.app_id
    assert (forged_dlq["source_topic"], forged_dlq["value"]) == (
        READINGS.name,
        attestation.encode(forged).decode(),
    )
    assert (forged_dlq["partition"], forged_dlq["offset"]) == publisher.positions[forged_label]
    assert forged_headers["dlq_reason"] == forged_dlq["reason"]
    assert forged_headers["ce_id"] == forged["reading_id"]  # the source record's headers are kept
    malformed_dlq, _ = dlq[malformed_key]
    assert malformed_dlq["reason"].startswith("malformed-json: ")
    assert (malformed_dlq["partition"], malformed_dlq["offset"]) == publisher.positions["malformed"]

    # The worker counted what it did.
    metrics = httpx.get(f"{worker.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    samples = parse_metrics(metrics.text)
    assert samples[f'smartcity_rewards_produced_total{{rule="{RULE}"}}'] >= len(valid) + 1
    assert samples['smartcity_rewards_rejections_total{reason="not-attested"}'] >= 1
    assert samples['smartcity_rewards_rejections_total{reason="malformed-json"}'] >= 1
    assert samples["smartcity_rewards_batch_duration_seconds_count"] >= 1


def test_readings_an_outsider_writes_to_the_topic_are_dead_lettered_and_the_good_one_beside_them_decided(
    worker: Worker, kafka_bootstrap: str
):
    """The attack: write access to the broker, a device nobody registered and no consent. Readings with no
    attestation, or attested by the attacker's own key, earn nothing; an honest reading beside them does."""
    outsider, honest = Device(), Device()
    mallory = Keypair.generate()
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for seq in range(1, 6):
        value = attestation.encode(outsider.envelope(seq))
        [forged] = attestation.attest(mallory, READINGS.name, [value])
        producer.produce(READINGS.name, key=outsider.did, value=value)
        producer.produce(
            READINGS.name, key=outsider.did, value=value, headers=[(attestation.HEADER, forged.encode())]
        )
    assert producer.flush(10) == 0
    publisher = Publisher(kafka_bootstrap)
    publisher.publish_envelope(honest, honest.envelope(1), "honest")
    publisher.flush()

    def arrived(messages: list[Message]) -> bool:
        dead = [m for m in messages if m.topic() == READINGS.dlq.name and m.key().decode() == outsider.did]
        decided = [
            m for m in messages if m.topic() == REWARD_DECISIONS.name and m.key().decode() == honest.owner.did
        ]
        # Rewards are published after their decisions: wait for the reward too.
        rewarded = [r for r in rewards_of(messages) if r.reward["wallet"] == honest.owner.did]
        return len(dead) >= 10 and len(decided) >= 1 and len(rewarded) >= 1

    messages = consume(kafka_bootstrap, [READINGS.dlq, REWARD_DECISIONS, REWARDS], arrived)
    dead = [
        json.loads(m.value())
        for m in messages
        if m.topic() == READINGS.dlq.name and m.key().decode() == outsider.did
    ]
    assert sorted(d["reason"].split(":")[0] for d in dead) == ["unattested"] * 5 + ["untrusted-attestor"] * 5
    owners = {r.reward["wallet"] for r in rewards_of(messages)}
    assert honest.owner.did in owners and outsider.owner.did not in owners
    decided = {
        v.get("device_id") for m in messages if m.topic() == REWARD_DECISIONS.name for v in lines_of(m)
    }
    assert honest.did in decided and outsider.did not in decided


def test_a_5_mb_reading_is_dead_lettered_small_and_the_readings_beside_it_decided(
    worker: Worker, kafka_bootstrap: str
):
    device = Device()
    huge = b'{"reading_id": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    big = Producer({"bootstrap.servers": kafka_bootstrap, "message.max.bytes": 10_000_000})
    big.produce(READINGS.name, key=device.did, value=huge)
    assert big.flush(30) == 0
    publisher = Publisher(kafka_bootstrap)
    for seq in (1, 2):
        publisher.publish_envelope(device, device.envelope(seq), f"after-{seq}")
    publisher.flush()

    def arrived(messages: list[Message]) -> bool:
        mine = [m for m in messages if m.key().decode() in (device.did, device.owner.did)]
        return (
            sum(m.topic() == READINGS.dlq.name for m in mine) >= 1
            and sum(m.topic() == REWARD_DECISIONS.name for m in mine) >= 2
        )

    messages = [
        m
        for m in consume(kafka_bootstrap, [READINGS.dlq, REWARD_DECISIONS], arrived)
        if m.key().decode() in (device.did, device.owner.did)
    ]
    [dead] = [json.loads(m.value()) for m in messages if m.topic() == READINGS.dlq.name]
    assert (dead["value_size"], dead["value_truncated"]) == (len(huge), True)
    assert sum(m.topic() == REWARD_DECISIONS.name for m in messages) == 2
    assert httpx.get(f"{worker.url}/readyz", timeout=5).status_code == 200


def test_a_reading_of_an_impossible_date_is_dead_lettered_and_the_readings_beside_it_decided(
    worker: Worker, kafka_bootstrap: str
):
    """Signed by its device and attested by ingest, but taken on a day that does not exist (the schema's
    pattern lets "2026-99-99T99:99:99Z" through): dead-lettered, and the worker goes on."""
    device = Device()
    publisher = Publisher(kafka_bootstrap)
    publisher.publish_envelope(device, device.envelope(1, ts="2026-99-99T99:99:99Z"), "impossible")
    publisher.publish_envelope(device, device.envelope(2), "after")
    publisher.flush()

    def arrived(messages: list[Message]) -> bool:
        mine = [m for m in messages if m.key().decode() in (device.did, device.owner.did)]
        return any(m.topic() == READINGS.dlq.name for m in mine) and any(
            m.topic() == REWARD_DECISIONS.name for m in mine
        )

    messages = [
        m
        for m in consume(kafka_bootstrap, [READINGS.dlq, REWARD_DECISIONS], arrived)
        if m.key().decode() in (device.did, device.owner.did)
    ]
    [dead] = [json.loads(m.value()) for m in messages if m.topic() == READINGS.dlq.name]
    assert (dead["partition"], dead["offset"]) == publisher.positions["impossible"]
    assert dead["reason"].startswith("impossible-date: ts '2026-99-99T99:99:99Z'"), dead["reason"]
    [decision] = [v for m in messages if m.topic() == REWARD_DECISIONS.name for v in lines_of(m)]
    assert decision["seq"] == 2
    assert httpx.get(f"{worker.url}/readyz", timeout=5).status_code == 200


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition as {'name{labels}': value}."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def verification_processes(worker: Worker) -> list[int]:
    """The worker's signature-checking processes (its multiprocessing children, not the resource tracker)."""
    children = subprocess.run(["pgrep", "-P", str(worker.process.pid)], capture_output=True, text=True)
    return [
        int(pid)
        for pid in children.stdout.split()
        if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]


def test_a_dead_verification_process_loses_no_reading(kafka_bootstrap: str, tmp_path: Path):
    worker = start_worker(kafka_bootstrap, tmp_path, REWARDS_VERIFY_WORKERS="1")
    try:
        device = Device()
        publisher = Publisher(kafka_bootstrap)

        def of_device(topic: Topic, count: int) -> list[dict[str, Any]]:
            def mine(messages: list[Message]) -> list[Message]:
                return [m for m in messages if m.key().decode() in (device.did, device.owner.did)]

            return [
                value
                for m in mine(consume(kafka_bootstrap, [topic], lambda ms: len(mine(ms)) >= count))
                for value in lines_of(m)
            ]

        publisher.publish_envelope(device, device.envelope(1), "first")
        publisher.flush()
        assert len(of_device(REWARD_DECISIONS, 1)) == 1  # the verification process has started
        [verifier] = verification_processes(worker)
        os.kill(verifier, signal.SIGKILL)

        envelopes = [device.envelope(seq) for seq in range(2, 12)]
        attested = device.envelope(12)
        forged = {**attested, "reading": {**attested["reading"], "values": {"pm25": 1.0}}}
        for envelope in envelopes:
            publisher.publish_envelope(device, envelope, envelope["reading_id"])
        publisher.publish_changed(device, forged, attested)
        publisher.flush()

        # Every reading decided once (the batch in hand checked in the worker itself), the forged one refused.
        decided = of_device(REWARD_DECISIONS, 11)
        assert sorted(d["reading_id"] for d in decided) == sorted(
            e["reading_id"] for e in [device.envelope(1), *envelopes]
        )
        [dead] = of_device(READINGS.dlq, 1)
        assert dead["reason"].startswith("not-attested")
        assert "a verification process died" in worker.log()

        # A new pool checks the next batches.
        publisher.publish_envelope(device, device.envelope(13), "after")
        publisher.flush()
        assert len(of_device(REWARD_DECISIONS, 12)) == 12
        assert verification_processes(worker) not in ([], [verifier])
    finally:
        worker.stop()


def test_health_readiness_and_metrics_answer(worker: Worker):
    assert httpx.get(f"{worker.url}/healthz", timeout=5).json() == {"status": "ok", "service": "rewards"}
    ready = httpx.get(f"{worker.url}/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json()["checks"] == {
        "broker": True,
        "consumer": True,
        "agent": True,
        "policy_on_chain": True,
        "consents": True,
    }
    metrics = httpx.get(f"{worker.url}/metrics", timeout=5)
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "smartcity_rewards_batch_duration_seconds" in metrics.text
    assert "smartcity_rewards_faust_messages_received" in metrics.text  # Faust's own sensors
    assert httpx.get(f"{worker.url}/openapi.json", timeout=5).json() == openapi_document()


def test_the_worker_stops_cleanly_on_sigterm_with_its_offsets_committed(kafka_bootstrap: str, tmp_path: Path):
    worker = start_worker(kafka_bootstrap, tmp_path)
    try:
        device = Device()
        publisher = Publisher(kafka_bootstrap)
        for seq in range(3):
            publisher.publish_envelope(device, device.envelope(seq), str(seq))
        publisher.flush()

        def rewarded(messages: list[Message]) -> bool:
            return sum(r.reward["wallet"] == device.owner.did for r in rewards_of(messages)) >= 3

        # The only worker running: the rewards are its own, sent before it acked the readings.
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


def test_a_worker_whose_agent_commits_nothing_exits_to_be_restarted(kafka_bootstrap: str, tmp_path: Path):
    """The ledger its policy must be published to never answers: the agent holds the readings and commits
    nothing, so after CONSUMER_STALL_S the worker stops with `EXIT_STUCK` (the supervisor or Kubernetes
    starts it again; the readings are consumed again)."""
    worker = start_worker(
        kafka_bootstrap,
        tmp_path,
        ready=False,  # it may be stuck (other tests' readings in hand) before it ever says ready
        REWARDS_LEDGER_URL=f"http://127.0.0.1:{embedded.free_port()}",  # nobody listens there
        CONSUMER_STALL_S="2",
    )
    try:
        device = Device()
        publisher = Publisher(kafka_bootstrap)
        publisher.publish_envelope(device, device.envelope(0), "0")
        publisher.flush()
        worker.process.wait(60)
    finally:
        worker.stop()
    assert worker.process.returncode == EXIT_STUCK, worker.log()
    assert "records in hand and committed nothing" in worker.log()


# --- SIGKILL mid-stream: the ledger pays every reward once -------------------------------------------------

DATA_REWARD = 500
DEVICE_CAP = 60 * DATA_REWARD  # binds at a device's 61st reading of the hour
WALLET_CAP = 200 * DATA_REWARD  # binds for a wallet with 4 devices
READINGS_PER_DEVICE = 100
DEVICES_PER_WALLET = (1, 2, 4, 1, 2, 4, 1, 2)


def start_ledger(platform: PlatformSettings, workdir: Path) -> tuple[subprocess.Popen, str]:
    """``python -m services.ledger`` on the test broker and its own databases, ready."""
    port = embedded.free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": platform.bootstrap_servers,
        "DATABASE_URL": platform.database_url or "",
        "DATABASE_PREFIX": platform.database_prefix,
        "SMARTCITY_DATA_DIR": str(platform.data_dir),
        "LEDGER_PORT": str(port),
        "LEDGER_CONSUMER_GROUP": unique_group("ledger-rewards-it"),
        # The tests' ingest key attests the readings; the worker's own (data dir) oracle key is seeded.
        "LEDGER_GENESIS_ROLES": json.dumps({Role.INGEST_ATTESTOR: [INGEST.did]}),
    }
    env.pop("LEDGER_SIGNING_KEY", None)
    with (workdir / "ledger.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.ledger"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (workdir / "ledger.log").read_text()
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, (workdir / "ledger.log").read_text()
        time.sleep(0.2)


class DecisionCounter:
    """Counts the decisions on our devices' readings published from now on."""

    def __init__(self, bootstrap: str, app_id: str, devices: set[str]) -> None:
        self.app_id = app_id
        self.devices = devices
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_group("decisions")})
        self.consumer.assign(
            [TopicPartition(REWARD_DECISIONS.name, p, OFFSET_END) for p in range(REWARD_DECISIONS.partitions)]
        )
        self.consumer.consume(1, 0.5)  # resolve the end offsets before anything is published
        self.reading_ids: list[str] = []

    def poll(self) -> int:
        for message in self.consumer.consume(5000, 0.05):
            if not message.error() and _is_json(message.value()):
                value = json.loads(message.value())
                if value.get("decided_by") == self.app_id and value["device_id"] in self.devices:
                    self.reading_ids.append(value["reading_id"])
        return len(self.reading_ids)


def test_a_worker_killed_mid_stream_neither_loses_nor_doubles_a_reward(
    platform_settings: PlatformSettings, tmp_path: Path
):
    bootstrap = platform_settings.bootstrap_servers
    policy = tmp_path / "policy.yaml"
    document = policy_document("kill-1", caps={"device_per_hour": DEVICE_CAP, "wallet_per_day": WALLET_CAP})
    document["kinds"]["air_quality"]["data_reward"] = DATA_REWARD
    policy.write_text(yaml.safe_dump(document))
    wallets = [Keypair.generate() for _ in DEVICES_PER_WALLET]
    devices = [Device(owner=w) for w, n in zip(wallets, DEVICES_PER_WALLET, strict=True) for _ in range(n)]
    # Every reading in one hour of one day, 30 s apart per device (no burst), values that move (not stuck)
    # and stay close to the zone's (no outlier).
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)

    def envelope(device: Device, seq: int) -> dict[str, Any]:
        ts = (hour + timedelta(seconds=30 * seq)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return device.envelope(seq, ts=ts, values={"pm2_5": 10.0 + seq % 7, "pm10": 20.0 + seq % 5})

    # Independently of the code under test: a wallet earns its devices' hour caps, up to its day cap.
    expected = {
        w.did: min(WALLET_CAP, n * min(DEVICE_CAP, READINGS_PER_DEVICE * DATA_REWARD))
        for w, n in zip(wallets, DEVICES_PER_WALLET, strict=True)
    }
    total = len(devices) * READINGS_PER_DEVICE

    ledger, ledger_url = start_ledger(platform_settings, tmp_path)
    auditor = SignedReadAuth(roles.auditor_key(platform_settings.data_dir))  # the development chain's auditor
    app_id = unique_group("rewards-kill")
    worker = start_worker(
        bootstrap, tmp_path, policy, app_id=app_id, REWARDS_BATCH_SIZE="100", REWARDS_LEDGER_URL=ledger_url
    )
    try:
        counter = DecisionCounter(bootstrap, app_id, {d.did for d in devices})
        publisher = Publisher(bootstrap)
        for seq in range(1, READINGS_PER_DEVICE + 1):
            for device in devices:
                publisher.publish_envelope(device, envelope(device, seq), f"{device.did}/{seq}")
        publisher.flush()
        deadline = time.monotonic() + DEADLINE_S
        while counter.poll() == 0:  # killed at its first decisions: well before it decided all
            assert time.monotonic() < deadline, worker.log()
        worker.process.kill()  # SIGKILL: no stop, no commit, batches in flight
        worker.process.wait(10)
        decided_before = counter.poll()
        assert 0 < decided_before < total, "the kill was not mid-stream"

        worker = start_worker(bootstrap, tmp_path, policy, app_id=app_id, REWARDS_LEDGER_URL=ledger_url)
        deadline = time.monotonic() + 2 * DEADLINE_S
        while len(set(counter.reading_ids)) < total:
            assert time.monotonic() < deadline, worker.log()
            counter.poll()
        # Each reading was decided once: the readings decided before the kill were recognised after it.
        assert len(counter.reading_ids) == total, f"{len(counter.reading_ids) - total} readings decided twice"

        def settled() -> dict[str, int]:
            return {
                wallet: httpx.get(f"{ledger_url}/v1/accounts/{wallet}", timeout=5, auth=auditor).json()[
                    "balances"
                ]["CITY"]
                for wallet in expected
            }

        deadline = time.monotonic() + 2 * DEADLINE_S
        while (balances := settled()) != expected:
            assert time.monotonic() < deadline, f"{balances} != {expected}"
            time.sleep(0.5)
        for wallet, amount in expected.items():
            items = httpx.get(
                f"{ledger_url}/v1/accounts/{wallet}/transactions",
                params={"limit": 1000},
                timeout=5,
                auth=auditor,
            ).json()["transactions"]
            assert len(items) == amount // DATA_REWARD, wallet  # no reward twice, none missing
        assert "Traceback" not in worker.log()
    finally:
        worker.stop()
        ledger.send_signal(signal.SIGTERM)
        try:
            ledger.wait(30)
        except subprocess.TimeoutExpired:
            ledger.kill()
            ledger.wait(5)


# --- rules, caps and quality through the worker ----------------------------------------------------------


def consume_decisions(bootstrap: str, reading_ids: set[str]) -> dict[str, dict[str, Any]]:
    """The decisions on `reading_ids` (waiting for all of them), by reading id."""

    def found(messages: list[Message]) -> set[str]:
        return {v["reading_id"] for m in messages for v in lines_of(m)} & reading_ids

    messages = consume(bootstrap, [REWARD_DECISIONS], lambda ms: found(ms) == reading_ids)
    decisions = {}
    for value in (v for message in messages for v in lines_of(message)):
        if value["reading_id"] in reading_ids:
            schemas.validate(REWARD_DECISIONS, value)
            decisions[value["reading_id"]] = value
    assert set(decisions) == reading_ids
    return decisions


PAST_HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
"""The hour the tests' readings are taken in: fixed once, so a test's readings never straddle two hours."""


def hour_ago(seconds: float) -> str:
    """A time `seconds` into `PAST_HOUR` (all of a test's readings in one hour and day)."""
    return (PAST_HOUR + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_each_rule_cap_and_quality_check_decides_with_its_reason(kafka_bootstrap: str, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        yaml.safe_dump(policy_document("rules-1", caps={"device_per_hour": 3000, "wallet_per_day": 5000}))
    )
    worker = start_worker(kafka_bootstrap, tmp_path, policy)
    try:
        publisher = Publisher(kafka_bootstrap)
        cases: dict[str, list[dict[str, Any]]] = {}

        def send(
            case: str, device: Device, seq: int, seconds: float, at: str | None = None, **changes: Any
        ) -> None:
            envelope = device.envelope(seq, ts=at or hour_ago(seconds), **changes)
            cases.setdefault(case, []).append(envelope)
            publisher.publish_envelope(device, envelope, f"{case}/{seq}")

        def air(seq: int) -> dict[str, float]:
            return {"pm2_5": 10.0 + seq % 7, "pm10": 20.0 + seq % 5}

        zone = f"z-{uuid.uuid4().hex[:8]}"
        capped = Device(zone=zone)
        for seq in range(1, 9):  # 500 each: 3000 an hour is six readings' worth, then nothing
            send("device-cap", capped, seq, seq * 100, values=air(seq))
        rider = Keypair.generate()
        for i, device in enumerate(
            (Device(kind="bike_trip", owner=rider), Device(kind="bike_trip", owner=rider))
        ):
            send(
                "wallet-cap", device, 1, 10 + i, values={"km": 1.0}
            )  # 16800 each, capped per device then wallet
        send("behaviour", Device(kind="bike_trip"), 1, 20, values={"km": 0.1})  # 1680
        send("impossible", Device(zone=zone), 1, 30, values={"pm2_5": -5.0, "pm10": 20.0})
        stuck = Device(zone=zone)
        for seq in range(1, 6):
            send("stuck", stuck, seq, seq * 100, values={"pm2_5": 12.0, "pm10": 21.0})
        bursty = Device(zone=zone)
        for seq in range(1, 32):
            send("burst", bursty, seq, 1000 + seq, values=air(seq))
        send("unknown-kind", Device(kind="noise"), 1, 40, values={"db_a": 50.0})
        skewed = Device(zone=zone)
        skew = skewed.envelope(1, ts=hour_ago(50 + 3600), values=air(1))  # an hour ahead of its receipt
        skew["received_at"] = hour_ago(50)
        cases["clock-skew"] = [skew]
        publisher.publish_envelope(skewed, skew, "clock-skew")
        buffered = Device(zone=zone)  # sent a day and a half after it was taken: beyond the policy's window
        taken = datetime.now(UTC) - timedelta(hours=36)
        late = buffered.envelope(
            1, ts=taken.isoformat(timespec="milliseconds").replace("+00:00", "Z"), values=air(1)
        )
        late["received_at"] = hour_ago(55)
        cases["too-late"] = [late]
        publisher.publish_envelope(buffered, late, "too-late")
        # The zone's windows are recent (the worker keeps the last minutes' windows for outlier checks),
        # in a minute that is over (so its statistics get published). A reading is judged against its
        # partition's share of the zone's minute (`engine`): one owner's devices, one partition.
        outliers = f"z-{uuid.uuid4().hex[:8]}"
        operator = Keypair.generate()
        minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)

        def in_minute(seconds: float) -> str:
            return (
                (minute + timedelta(seconds=seconds))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )

        for i in range(20):
            values = {"pm2_5": 8.0 + i % 5, "pm10": 20.0 + i % 3}
            send("zone", Device(owner=operator, zone=outliers), 1, 0, at=in_minute(i), values=values)
        publisher.flush()
        ids = {e["reading_id"] for envelopes in cases.values() for e in envelopes}
        decisions = consume_decisions(kafka_bootstrap, ids)
        # Judged against the zone's readings once they are decided (they may be on other partitions).
        send(
            "outlier",
            Device(owner=operator, zone=outliers),
            1,
            0,
            at=in_minute(30),
            values={"pm2_5": 95.0, "pm10": 21.0},
        )
        publisher.flush()
        decisions.update(consume_decisions(kafka_bootstrap, {cases["outlier"][0]["reading_id"]}))

        def outcome(case: str) -> list[tuple[list[tuple[str, int]], list[str]]]:
            return [
                (
                    [(r["rule"], r["amount"]) for r in decisions[e["reading_id"]]["rewards"]],
                    [r["code"] for r in decisions[e["reading_id"]]["reasons"]],
                )
                for e in cases[case]
            ]

        data = "data.air_quality"
        assert outcome("device-cap") == [([(data, 500)], [])] * 6 + [([], ["cap-device-hour"])] * 2
        # The two devices are on two partitions: which one the wallet's cap cuts depends on the order.
        assert sorted(outcome("wallet-cap")) == [
            ([("behaviour.bike_trip", 2000)], ["cap-wallet-day"]),
            ([("behaviour.bike_trip", 3000)], ["cap-device-hour"]),
        ]
        assert outcome("behaviour") == [([("behaviour.bike_trip", 1680)], [])]
        assert outcome("impossible") == [([], ["impossible-value"])]
        assert outcome("stuck") == [([(data, 500)], [])] * 4 + [([], ["stuck-sensor"])]
        assert outcome("burst")[30] == ([], ["burst"])
        assert outcome("unknown-kind") == [([], ["unknown-kind"])]
        assert outcome("clock-skew") == [([], ["clock-skew"])]
        assert outcome("too-late") == [([], ["too-late"])]
        assert outcome("outlier") == [([], ["outlier"])]
        assert all(d["policy_version"] == "rules-1" for d in decisions.values())

        # Every reward carries the policy version and the rule, and is the one its decision names.
        paid = {r["reward_id"]: r for d in decisions.values() for r in d["rewards"]}
        owners = {e["owner"] for envelopes in cases.values() for e in envelopes}

        def ours(messages: list[Message]) -> list[dict[str, Any]]:
            return [r.reward for r in rewards_of(messages) if r.reward["wallet"] in owners]

        rewards = ours(
            consume(kafka_bootstrap, [REWARDS], lambda ms: {r["reward_id"] for r in ours(ms)} >= set(paid))
        )
        assert {r["reward_id"] for r in rewards} == set(paid)
        for reward in rewards:
            assert reward["policy_version"] == "rules-1"
            assert (reward["rule"], reward["amount"]) == (
                paid[reward["reward_id"]]["rule"],
                paid[reward["reward_id"]]["amount"],
            )

        # The reasons are counted for Prometheus.
        samples = parse_metrics(httpx.get(f"{worker.url}/metrics", timeout=5).text)
        for reason in (
            "cap-device-hour",
            "cap-wallet-day",
            "impossible-value",
            "stuck-sensor",
            "burst",
            "outlier",
        ):
            assert samples[f'smartcity_rewards_decision_reasons_total{{reason="{reason}"}}'] >= 1, reason
        assert samples['smartcity_rewards_produced_total{rule="behaviour.bike_trip"}'] >= 3
        assert samples["smartcity_rewards_latency_seconds_count"] >= 1
        assert any(k.startswith("smartcity_rewards_consumer_lag{") for k in samples)
        assert samples['smartcity_rewards_policy_info{version="rules-1"}'] == 1

        # The analysts' feed: the outlier zone's minute, the outlier left out.
        def zone_stats(messages: list[Message]) -> list[dict[str, Any]]:
            return [json.loads(m.value()) for m in messages if m.key().decode() == outliers]

        (stats,) = zone_stats(consume(kafka_bootstrap, [ZONE_STATS], lambda ms: bool(zone_stats(ms))))
        schemas.validate(ZONE_STATS, stats)
        pm = sorted(8.0 + i % 5 for i in range(20))
        assert (stats["kind"], stats["count"]) == ("air_quality", 20)
        assert stats["window_end"] > stats["window_start"] and stats["window_start"].endswith(":00.000Z")
        assert stats["values"]["pm2_5"] == {
            "count": 20,
            "mean": sum(pm) / 20,
            "min": 8.0,
            "max": 12.0,
            "p50": pm[9],
            "p95": pm[18],
        }
    finally:
        worker.stop()


# --- policy reload ----------------------------------------------------------------------------------------


def test_a_new_policy_is_picked_up_live_and_a_bad_one_refused(kafka_bootstrap: str, tmp_path: Path):
    policy = write_policy(tmp_path / "policy.yaml", "reload-1")
    worker = start_worker(kafka_bootstrap, tmp_path, policy, REWARDS_POLICY_RELOAD_S="0.2")
    try:
        device = Device()
        publisher = Publisher(kafka_bootstrap)

        def decide(seq: int) -> dict[str, Any]:
            envelope = device.envelope(
                seq, ts=hour_ago(seq * 100), values={"pm2_5": 10.0 + seq, "pm10": 20.0}
            )
            publisher.publish_envelope(device, envelope, str(seq))
            publisher.flush()
            return consume_decisions(kafka_bootstrap, {envelope["reading_id"]})[envelope["reading_id"]]

        def version_in_force(version: str) -> None:
            deadline = time.monotonic() + DEADLINE_S
            while httpx.get(f"{worker.url}/readyz", timeout=5).json()["policy_version"] != version:
                assert time.monotonic() < deadline, worker.log()
                time.sleep(0.1)

        first = decide(1)
        assert (first["policy_version"], first["rewards"][0]["amount"]) == ("reload-1", AMOUNT)

        document = yaml.safe_load(policy.read_text())
        document["version"] = "reload-2"
        document["kinds"]["air_quality"]["data_reward"] = 777
        policy.write_text(yaml.safe_dump(document))
        version_in_force("reload-2")
        second = decide(2)
        assert (second["policy_version"], second["rewards"][0]["amount"]) == ("reload-2", 777)

        policy.write_text(
            yaml.safe_dump({**document, "version": "reload-3", "caps": {"device_per_hour": -1}})
        )
        deadline = time.monotonic() + DEADLINE_S
        while "refused the new policy file" not in worker.log():
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.1)
        assert "caps" in worker.log().split("refused the new policy file", 1)[1].splitlines()[0]
        third = decide(3)
        assert (third["policy_version"], third["rewards"][0]["amount"]) == ("reload-2", 777)
        samples = parse_metrics(httpx.get(f"{worker.url}/metrics", timeout=5).text)
        assert samples['smartcity_rewards_policy_loads_total{outcome="refused"}'] >= 1
        assert worker.process.poll() is None
    finally:
        worker.stop()


def test_the_worker_does_not_start_with_a_bad_policy(kafka_bootstrap: str, tmp_path: Path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nkinds: {}\n")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "REWARDS_POLICY_PATH": str(policy),
        "REWARDS_WEB_PORT": str(embedded.free_port()),
        "SMARTCITY_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "services.rewards"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"no usable reward policy: {policy} does not fit policy.v1.json" in result.stdout + result.stderr


# In the worker process (as `smartcity up` runs it on 2 cores) and in a verification process beside it.
@pytest.mark.parametrize("worker", ["0", "1"], indirect=True, ids=["checked-in-process", "checked-in-pool"])
def test_a_batch_record_is_decided_line_by_line_and_a_forged_one_is_refused_whole(
    worker: Worker, kafka_bootstrap: str
):
    devices = [Device() for _ in range(3)]
    publisher = Publisher(kafka_bootstrap)
    for device in devices:
        publisher.consent(device.owner, kinds.category(device.kind))
    good = [devices[n % 2].envelope(1 + n // 2) for n in range(6)]
    misnamed = {**devices[0].envelope(9), "reading_id": "0" * 64}  # attested, but not a reading ingest makes
    honest = [attestation.encode(e) for e in [*good[:3], misnamed, *good[3:]]]
    forged_lines = [attestation.encode(devices[2].envelope(seq)) for seq in (1, 2, 3)]
    attested_forged = attestation.attest_record(INGEST, READINGS.name, forged_lines)
    forged_lines[1] = attestation.encode({**json.loads(forged_lines[1]), "owner": Keypair.generate().did})
    mallory = Keypair.generate()
    outsider_lines = [attestation.encode(devices[2].envelope(seq)) for seq in (4, 5)]
    records = {
        "honest": (honest, attestation.attest_record(INGEST, READINGS.name, honest)),
        "forged": (forged_lines, attested_forged),
        "outsider": (outsider_lines, attestation.attest_record(mallory, READINGS.name, outsider_lines)),
    }
    batch_key = f"batch-{uuid.uuid4().hex}"
    for label, (lines, header) in records.items():
        headers = cloudevent_headers("city.readings-batch.v1", "smartcity/ingest", f"{label}-{batch_key}")
        headers.append((attestation.HEADER, header.encode()))
        publisher.producer.produce(READINGS.name, key=batch_key, value=b"\n".join(lines), headers=headers)
    publisher.flush()

    owners = {device.owner.did for device in devices}
    good_ids = {e["reading_id"] for e in good}

    def ours(messages: list[Message]) -> tuple[list[PublishedReward], list[Message], list[Message]]:
        rewards = [r for r in rewards_of(messages) if r.reward["wallet"] in owners]
        decisions = [
            m
            for m in messages
            if m.topic() == REWARD_DECISIONS.name and lines_of(m)[0].get("reading_id") in good_ids
        ]
        dead = [m for m in messages if m.topic() == READINGS.dlq.name and m.key().decode() == batch_key]
        return rewards, decisions, dead

    def all_arrived(messages: list[Message]) -> bool:
        rewards, decisions, dead = ours(messages)
        return len(rewards) >= len(good) and len(decisions) >= 1 and len(dead) >= 3

    rewards, decisions, dead = ours(
        consume(kafka_bootstrap, [REWARDS, REWARD_DECISIONS, READINGS.dlq], all_arrived)
    )

    # Each good line earned once; its evidence is its own line under its own attestation, which the ledger
    # checks alone (`verify_disclosure`), like a single record's.
    by_reading = {r.reward["reading_id"]: r.value for r in rewards}
    assert len(rewards) == len(good) and set(by_reading) == good_ids
    for envelope in good:
        value = by_reading[envelope["reading_id"]]
        opened, ingest = verify_disclosure(value["reward"], value["disclosure"])
        assert opened == envelope and ingest == INGEST.did
        assert value["disclosure"]["attestation"]["size"] == len(honest)
    # The good lines' decisions are one record, keyed as the readings record, attested by the rewards oracle.
    (decided,) = decisions
    assert decided.key().decode() == batch_key
    header = dict(decided.headers())[attestation.HEADER]
    lines = attestation.lines_by(header, REWARD_DECISIONS.name, decided.value(), {worker.oracle_did})
    assert [json.loads(line)["reading_id"] for line in lines] == [e["reading_id"] for e in good]

    # The misnamed line went to the DLQ alone; the forged and the outsider's records, whole.
    reasons = {}
    for message in dead:
        value = json.loads(message.value())
        schemas.validate(READINGS.dlq, value)
        reasons[value["value"]] = value["reason"].split(":")[0]
    assert reasons == {
        honest[3].decode(): "reading-id",
        b"\n".join(forged_lines).decode(): "not-attested",
        b"\n".join(outsider_lines).decode(): "untrusted-attestor",
    }
