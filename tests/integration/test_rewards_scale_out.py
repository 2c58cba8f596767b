"""Rewards scaled out: two workers in one consumer group decide exactly as one does, caps and zone statistics
included, and a restarted worker recovers from its partitions' snapshots, reading only what came after them.

Each test runs on a broker of its own (the embedded one), so the readings topic holds the test's readings
only: the zone statistics compared are then a function of them alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Message, Producer

from services.common import attestation, events, kinds, roles
from services.common.roles import Role
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import READINGS, REWARD_DECISIONS, REWARDS_SNAPSHOTS, ZONE_PARTIALS, ZONE_STATS
from services.ingest.readings import batch_records
from services.rewards import snapshots
from services.rewards.engine import State
from tests.conftest import embedded_broker
from tests.integration.test_rewards_worker import (
    Publisher,
    Worker,
    consume,
    lines_of,
    parse_metrics,
    start_worker,
)
from tests.support.factories import INGEST
from tests.unit.test_rewards_samples import Device, policy_document

pytestmark = pytest.mark.integration

CAPS = {"device_per_hour": 2500, "wallet_per_day": 4000, "person_per_day": 6000}
ZONES = ("scale-north", "scale-south", "scale-east")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    """A broker of the test's own, with every platform topic."""
    with embedded_broker(tmp_path / "tansu.log") as url:
        yield url


def write_policy(path: Path) -> Path:
    """Caps that bind (device-hour, wallet-day, person-day, two wallets a person), outliers judged from 4
    readings of a partition's share of a zone's minute, and statistics shown over 3 devices."""
    document = policy_document(
        "scale-1", caps=CAPS, people={"binding_required": True, "wallets_per_person": 2}
    )
    document["quality"]["outlier"]["min_samples"] = 4
    document["privacy"] = {"k_anonymity": 3}
    path.write_text(yaml.safe_dump(document))
    return path


class Fleet:
    """People with one to three wallets (the third is one too many), wallets with one or two devices, and
    wallets bound to no one; readings over four minutes of an hour three hours ago, in time order."""

    def __init__(self) -> None:
        self.devices: list[tuple[Device, str | None]] = []
        for p in range(8):
            person = hashlib.sha256(f"person {p} {time.time_ns()}".encode()).hexdigest()
            for w in range(1 + p % 3):
                owner = Keypair.generate()
                for d in range(1 + (p + w) % 2):
                    self.devices.append((Device(owner=owner, zone=ZONES[(p + w + d) % 3]), person))
        for u in range(3):
            self.devices.append((Device(zone=ZONES[u]), None))
        self.hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
        self.seqs: Counter[str] = Counter()

    def envelopes(self, minutes: range) -> list[dict[str, Any]]:
        """Three readings a device a minute; one device's values never change (stuck), and one reading a
        zone and minute is far off the others (an outlier)."""
        out = []
        for minute in minutes:
            for second in (5, 25, 45):
                for index, (device, person) in enumerate(self.devices):
                    self.seqs[device.did] += 1
                    seq = self.seqs[device.did]
                    ts = self.hour + timedelta(minutes=minute, seconds=second + index * 0.1)
                    values = {"pm2_5": 10.0 + (seq + index) % 7, "pm10": 20.0 + seq % 5}
                    if index == 0:
                        values = {"pm2_5": 11.0, "pm10": 22.0}
                    elif second == 45 and index % 9 == 4:
                        values = {"pm2_5": 900.0, "pm10": 21.0}
                    stamp = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                    envelope = device.envelope(seq, ts=stamp, values=values)
                    if person is not None:
                        envelope["person"] = person
                    out.append((ts, device, envelope))
        out.sort(key=lambda item: item[0])
        return [(device, envelope) for _, device, envelope in out]


def publish(broker: str, items: list[tuple[Device, dict[str, Any]]]) -> set[str]:
    """Publish the readings as ingest does: batch records of a partition's readings, in order, once their
    owners' consents are on the topic."""
    publisher = Publisher(broker)
    for device, _ in items:
        publisher.consent(device.owner, kinds.category(device.kind))
    for record in batch_records(
        INGEST, [envelope for _, envelope in items], PlatformSettings().readings_per_record
    ):
        publisher.producer.produce(
            READINGS.name,
            key=record.key,
            value=record.value,
            headers=record.headers,
            partition=record.partition,
        )
    publisher.flush()
    return {envelope["reading_id"] for _, envelope in items}


def decisions_of(broker: str, ids: set[str], app_id: str) -> dict[str, dict[str, Any]]:
    """The decisions of app `app_id` on `ids` (waiting for all), by reading id, without who decided."""

    def mine(messages: list[Message]) -> dict[str, dict[str, Any]]:
        out = {}
        for value in (v for message in messages for v in lines_of(message)):
            if value["decided_by"] == app_id and value["reading_id"] in ids:
                out[value["reading_id"]] = {k: v for k, v in value.items() if k != "decided_by"}
        return out

    found = mine(consume(broker, [REWARD_DECISIONS], lambda ms: len(mine(ms)) == len(ids), deadline_s=90))
    assert set(found) == ids, f"{app_id} decided {len(found)} of {len(ids)}"
    return found


def counted_windows(decisions: dict[str, dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many readings the decisions counted in each zone window: (zone, window start) -> count."""
    counted: Counter[tuple[str, str]] = Counter()
    for decision in decisions.values():
        if decision["counted"]:
            at = datetime.fromisoformat(decision["ts"])
            start = at.replace(second=0, microsecond=0).isoformat(timespec="milliseconds")
            counted[decision["zone"], start.replace("+00:00", "Z")] += 1
    return counted


def stats_by_window(messages: list[Message]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The ``city.zone-stats.v1`` values among `messages` of this module's zones, by (zone, window start)."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for message in messages:
        if message.key().decode() in ZONES:
            value = json.loads(message.value())
            out.setdefault((value["zone"], value["window_start"]), []).append(value)
    return out


def assigned(worker: Worker) -> set[int] | None:
    """The readings partitions the worker's log last says it holds."""
    found = re.findall(r"city\.readings\.v1 partitions \[([\d, ]*)\] assigned here", worker.log())
    return None if not found else {int(p) for p in found[-1].split(",") if p.strip()}


QUIET_S = 15.0
"""How long a group goes without a rebalance before the test calls it settled (over twice the session)."""


class GroupWatch:
    """Whether workers have logged no assignment nor rebalance for a while (the count of such lines stayed
    put, as this process saw it)."""

    EVENT = re.compile(r"assigned here|rebalancing")

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self.count = -1
        self.since = time.monotonic()

    def events(self) -> int:
        """How many assignments and rebalances the workers have logged."""
        return sum(len(self.EVENT.findall(worker.log())) for worker in self.workers)

    def quiet_for(self, seconds: float) -> bool:
        count = self.events()
        now = time.monotonic()
        if count != self.count:
            self.count, self.since = count, now
        return now - self.since >= seconds


def wait_for(what: str, condition: Any, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_two_workers_decide_exactly_as_one_caps_and_zone_statistics_included(broker: str, tmp_path: Path):
    policy = write_policy(tmp_path / "policy.yaml")
    one = start_worker(broker, tmp_path, policy, app_id="scale-one")
    pair = [start_worker(broker, tmp_path, policy, app_id="scale-two") for _ in range(2)]
    try:
        # The pair has split the partitions between them before a reading comes.
        # ... and the group has settled: the embedded broker often rebalances once more some seconds after a
        # join.
        def shared() -> bool:
            a, b = assigned(pair[0]), assigned(pair[1])
            return bool(a and b and not a & b and a | b == set(range(6)))

        wait_for("the two workers to share the six partitions", shared)
        group = GroupWatch(pair)
        wait_for("the group to settle", lambda: group.quiet_for(QUIET_S) and shared(), deadline_s=90)
        fleet = Fleet()
        ids = publish(broker, fleet.envelopes(range(4)))
        alone = decisions_of(broker, ids, "scale-one")
        shared = decisions_of(broker, ids, "scale-two")

        # The same decision on every reading: the same rewards, reasons (caps included) and counted values.
        for reading_id, decision in alone.items():
            assert shared[reading_id] == decision
        reasons = Counter(r["code"] for d in alone.values() for r in d["reasons"])
        for code in ("cap-device-hour", "cap-wallet-day", "cap-person-day", "unverified-person", "outlier"):
            assert reasons[code] > 0, (code, reasons)
        assert reasons["stuck-sensor"] > 0
        # Both workers of the pair decided: the work was shared.
        for worker in pair:
            decided = parse_metrics(httpx.get(f"{worker.url}/metrics", timeout=5).text)
            assert sum(v for k, v in decided.items() if k.startswith("smartcity_rewards_readings_total")) > 0

        # Each zone window is published once by each group, the same, and counts what the decisions counted.
        counted = counted_windows(alone)

        def both_groups_published(messages: list[Message]) -> bool:
            found = stats_by_window(messages)
            return all(len(found.get(window, [])) >= 2 for window in counted)

        by_window = stats_by_window(consume(broker, [ZONE_STATS], both_groups_published, deadline_s=90))
        assert set(by_window) == set(counted)
        for window, published in by_window.items():
            # One copy from each group, the same, shown, counting what the decisions counted.
            assert len(published) == 2 and published[0] == published[1], (window, published)
            assert published[0]["suppressed"] is False and published[0]["count"] == counted[window]
    finally:
        for worker in (one, *pair):
            worker.stop()


def test_a_restarted_worker_reads_its_snapshots_and_only_the_decisions_after_them(
    broker: str, tmp_path: Path
):
    policy = write_policy(tmp_path / "policy.yaml")
    quick = {"REWARDS_SNAPSHOT_INTERVAL_S": "2", "REWARDS_SNAPSHOT_RECENT_S": "0.5"}
    restarted = start_worker(broker, tmp_path, policy, app_id="snap-restarted", **quick)
    reference = start_worker(broker, tmp_path, policy, app_id="snap-reference", **quick)
    try:
        fleet = Fleet()
        history = publish(broker, fleet.envelopes(range(12)))
        decided = decisions_of(broker, history, "snap-restarted")
        used = {decision["partition"] for decision in decided.values()}
        time.sleep(2.5)  # a snapshot interval: the next batch snapshots every partition it decides
        tick = publish(broker, fleet.envelopes(range(12, 13)))
        decisions_of(broker, tick, "snap-restarted")

        def snapshotted() -> set[int]:
            messages = consume(broker, [REWARDS_SNAPSHOTS], lambda ms: False, deadline_s=2)
            return {
                json.loads(m.value())["partition"]
                for m in messages
                if json.loads(m.value())["app_id"] == "snap-restarted"
                and json.loads(m.value())["offset"] >= 0
            }

        wait_for("a snapshot of every partition that decided", lambda: snapshotted() >= used)
        time.sleep(1.0)  # past the read-back before the capture
        recent = publish(broker, fleet.envelopes(range(13, 14)))
        decisions_of(broker, recent, "snap-restarted")

        # Killed, as a node dies: nothing drains, nothing is committed on the way out.
        os.kill(restarted.process.pid, signal.SIGKILL)
        restarted.process.wait(10)
        # Then snapshots nobody (or an outsider) attested, later than the worker's: an empty state covering
        # every reading would zero the caps. The restarted worker reads only what its own key attested.
        forger, outsider = Producer({"bootstrap.servers": broker}), Keypair.generate()
        for partition in used:
            (forged,) = snapshots.records("snap-restarted", partition, 10**9, time.time(), State())
            value = attestation.encode(forged.value)
            (by_outsider,) = attestation.attest(outsider, REWARDS_SNAPSHOTS.name, [value])
            for headers in ([], [(attestation.HEADER, by_outsider.encode())]):
                forger.produce(
                    REWARDS_SNAPSHOTS.name, key=forged.key, value=value, headers=headers, partition=partition
                )
        assert forger.flush(10) == 0
        again = start_worker(broker, tmp_path, policy, app_id="snap-restarted", **quick)
        try:

            def recovered() -> dict[str, float]:
                return parse_metrics(httpx.get(f"{again.url}/metrics", timeout=5).text)

            wait_for(
                "the partitions recovered", lambda: "smartcity_rewards_recovery_records{" in str(recovered())
            )
            metrics = recovered()
            from_snapshot = {
                k: v for k, v in metrics.items() if k.startswith("smartcity_rewards_recovery_from_snapshot")
            }
            read = sum(v for k, v in metrics.items() if k.startswith("smartcity_rewards_recovery_records{"))
            assert {
                int(re.search(r'partition="(\d+)"', k)[1]) for k, v in from_snapshot.items() if v == 1
            } >= used, from_snapshot
            # Bounded by what came after the snapshots (and the read-back before them), not the history.
            assert read < (len(tick) + len(recent)) * 1.5, (read, len(history), len(tick), len(recent))
            assert read < len(history) / 4

            # The restored state decides the next minutes exactly as a worker that never stopped.
            later = publish(broker, fleet.envelopes(range(14, 16)))
            after_restart = decisions_of(broker, later, "snap-restarted")
            assert after_restart == decisions_of(broker, later, "snap-reference")
            assert any(r["code"].startswith("cap-") for d in after_restart.values() for r in d["reasons"])
            # Every reading decided once by the restarted app (a redelivery is recognised, not decided again).
            everything = history | tick | recent | later
            counts = Counter(
                value["reading_id"]
                for m in consume(broker, [REWARD_DECISIONS], lambda ms: False, deadline_s=3)
                for value in lines_of(m)
                if value["decided_by"] == "snap-restarted"
            )
            assert set(counts) == everything and set(counts.values()) == {1}
        finally:
            again.stop()
    finally:
        restarted.stop()
        reference.stop()


def test_forged_zone_shares_are_dead_lettered_and_the_statistics_sum_only_the_workers_own(
    broker: str, tmp_path: Path
):
    policy = write_policy(tmp_path / "policy.yaml")
    worker = start_worker(broker, tmp_path, policy, app_id="zone-guard")
    try:
        oracle = roles.service_key(None, worker.data_dir, Role.REWARDS_ORACLE)
        fleet = Fleet()
        start = int(fleet.hour.timestamp())
        forged = {
            "app_id": "zone-guard",
            "zone": ZONES[0],
            "kind": "air_quality",
            "window_start": start,
            "partition": 0,
            "k": 3,
            "count": 999,
            "values": {"pm2_5": [999.0] * 5, "pm10": [999.0] * 5},
            "devices": [Keypair.generate().did for _ in range(5)],
            "value_devices": {},
            "sent_at": int(time.time() * 1000),
        }
        early = {
            "app_id": "zone-guard",
            "partition": 0,
            "closed_through": start + 10**6,
            "sent_at": int(time.time() * 1000) + 10**6,
        }
        producer = Producer({"bootstrap.servers": broker})

        def produce(value: bytes, headers: list[tuple[str, bytes]], key: str = ZONES[0]) -> None:
            producer.produce(ZONE_PARTIALS.name, key=key, value=value, headers=headers)

        body = attestation.encode(forged)
        (by_outsider,) = attestation.attest(Keypair.generate(), ZONE_PARTIALS.name, [body])
        (by_oracle,) = attestation.attest(oracle, ZONE_PARTIALS.name, [body])
        produce(body, [])  # unattested
        produce(body, [(attestation.HEADER, by_outsider.encode())])  # another key
        produce(attestation.encode({**forged, "count": 1000}), [(attestation.HEADER, by_oracle.encode())])
        produce(b"{not json", [(attestation.HEADER, by_oracle.encode())])
        for p in range(6):  # "every partition closed far ahead": would publish windows before their shares
            marker = attestation.encode({**early, "partition": p})
            (header,) = attestation.attest(Keypair.generate(), ZONE_PARTIALS.name, [marker])
            produce(marker, [(attestation.HEADER, header.encode())], key="closed-through")
        assert producer.flush(10) == 0

        ids = publish(broker, fleet.envelopes(range(2)))
        decided = decisions_of(broker, ids, "zone-guard")
        counted = sum(
            1
            for d in decided.values()
            if d["counted"]
            and d["zone"] == ZONES[0]
            and d["ts"].startswith(fleet.hour.strftime("%Y-%m-%dT%H:00"))
        )

        def first_window(messages: list[Message]) -> list[dict[str, Any]]:
            return [
                v
                for v in (json.loads(m.value()) for m in messages)
                if v["zone"] == ZONES[0] and v["window_start"] == events.rfc3339(fleet.hour)
            ]

        (stats,) = first_window(
            consume(broker, [ZONE_STATS], lambda ms: bool(first_window(ms)), deadline_s=60)
        )
        assert stats["count"] == counted and stats["values"]["pm2_5"]["max"] != 999.0  # none of the forgeries
        dead = [
            json.loads(m.value())
            for m in consume(broker, [ZONE_PARTIALS.dlq], lambda ms: len(ms) >= 10, deadline_s=30)
        ]
        reasons = sorted(entry["reason"].split(":")[0] for entry in dead)
        assert len(dead) == 10 and all(e["source_topic"] == ZONE_PARTIALS.name for e in dead), reasons
        assert "unattested" in reasons and reasons.count("untrusted-attestor") == 7, reasons
    finally:
        worker.stop()


def test_genuine_zone_partials_replayed_onto_the_topic_change_no_statistic(broker: str, tmp_path: Path):
    policy = write_policy(tmp_path / "policy.yaml")
    worker = start_worker(broker, tmp_path, policy, app_id="zone-replay")
    try:
        fleet = Fleet()
        before = decisions_of(broker, publish(broker, fleet.envelopes(range(2))), "zone-replay")
        windows_before = counted_windows(before)
        consume(
            broker,
            [ZONE_STATS],
            lambda ms: set(stats_by_window(ms)) >= set(windows_before),
            deadline_s=90,
        )
        # Everything the worker sent the zone stage so far (shares of those windows, markers), as it was sent.
        genuine = [
            m
            for m in consume(broker, [ZONE_PARTIALS], lambda ms: False, deadline_s=3)
            if json.loads(m.value())["app_id"] == "zone-replay"
        ]
        shares = [m for m in genuine if "closed_through" not in json.loads(m.value())]
        assert shares and len(genuine) > len(shares)

        def metric(name: str) -> float:
            found = parse_metrics(httpx.get(f"{worker.url}/metrics", timeout=5).text)
            return sum(v for k, v in found.items() if k == name or k.startswith(name + "{"))

        stale_before = metric("smartcity_rewards_zone_stale_records_total")
        # Someone with write access to the topic produces all of it again, while the next minutes are decided;
        # and each share once more on another lane, where no stage holds its window.
        producer = Producer({"bootstrap.servers": broker})
        for message, lane in [
            *((m, m.partition()) for m in genuine),
            *((m, (m.partition() + 1) % ZONE_PARTIALS.partitions) for m in shares),
        ]:
            producer.produce(
                ZONE_PARTIALS.name,
                key=message.key(),
                value=message.value(),
                headers=message.headers(),
                partition=lane,
            )
        assert producer.flush(10) == 0
        after = decisions_of(broker, publish(broker, fleet.envelopes(range(2, 4))), "zone-replay")
        counted = counted_windows(before | after)

        def every_window(messages: list[Message]) -> bool:
            return set(stats_by_window(messages)) >= set(counted)

        consume(broker, [ZONE_STATS], every_window, deadline_s=90)
        # Every replayed marker is left out (the stage holds a newer one from its partition); every replayed
        # share is left out too, as late (its window is final) or as older than the one held.
        replayed_markers = len(genuine) - len(shares)
        wait_for(
            "the replayed records left out",
            lambda: metric("smartcity_rewards_zone_stale_records_total") - stale_before >= replayed_markers,
        )
        moved = [
            entry
            for entry in (
                json.loads(m.value())
                for m in consume(
                    broker, [ZONE_PARTIALS.dlq], lambda ms: len(ms) >= len(shares), deadline_s=30
                )
            )
            if entry["reason"].startswith("wrong-lane")
        ]
        assert len(moved) == len(shares)
        time.sleep(3)  # a publication the replay would cause comes within the stage's next rounds
        by_window = stats_by_window(consume(broker, [ZONE_STATS], lambda ms: False, deadline_s=3))
        assert set(by_window) == set(counted)
        for window, published in by_window.items():
            # Published once, shown, counting exactly what the decisions counted.
            assert len(published) == 1, (window, published)
            assert published[0]["suppressed"] is False and published[0]["count"] == counted[window]
    finally:
        worker.stop()
