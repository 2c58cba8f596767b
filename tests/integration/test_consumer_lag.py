"""``smartcity_consumer_lag`` on the real broker: a group that committed part of a topic shows exactly the records
it has left, a platform consumer that takes the rest brings it to 0, and a topic view is measured from how far it
has read; each service that consumes exports the lag of its own groups and views on /metrics while it runs. Every
record is produced alone (a batch of one), so the embedded broker's listed end is exact (`services.common.lag`)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import KafkaException, Producer
from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge
from prometheus_client.parser import text_string_to_metric_families

from services.common.batch_consumer import BatchConsumer, IncomingRecord, Rejection
from services.common.embedded import free_port
from services.common.follower import TopicView
from services.common.kafka import KafkaProducer, ensure_topics
from services.common.lag import LagMonitor
from services.common.metrics import exposition
from services.common.settings import PlatformSettings
from services.common.topics import BINDINGS, CONSENTS, MERCHANTS, REWARD_DECISIONS, REWARDS, ZONE_STATS, Topic
from services.ingest.app import create_app as create_ingest_app
from services.ingest.settings import IngestSettings
from services.ledger.app import create_app as create_ledger_app
from services.ledger.settings import LedgerSettings
from services.portal.app import create_app as create_portal_app
from services.portal.settings import PortalSettings
from tests.support.asgi import running
from tests.support.factories import TEST_ROLES
from tests.support.topics import commit_offsets, unique_group
from tests.support.waiting import holds, until

RECORDS = {0: 5, 1: 3}
"""Records produced per partition."""


def _topic() -> Topic:
    return Topic(f"test.lag-{uuid.uuid4().hex[:8]}.v1", key="id", schema="dlq.v1.json", partitions=2)


def _produce_one_at_a_time(bootstrap: str, topic: Topic, per_partition: dict[int, int]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    for partition, count in per_partition.items():
        for i in range(count):
            producer.produce(topic.name, value=f"{partition}-{i}".encode(), partition=partition)
            assert producer.flush(10) == 0
    producer.flush(10)


def _exported(group: str, topic: Topic, partition: int) -> float | None:
    labels = {"group": group, "topic": topic.name, "partition": str(partition)}
    return REGISTRY.get_sample_value("smartcity_consumer_lag", labels)


_TEST_METRICS = CollectorRegistry()  # the test view's own metrics stay out of the services' registry
_VIEW_AGE = Gauge("test_view_age_seconds", "Test view age.", ["client"], registry=_TEST_METRICS)
_VIEW_RECORDS = Counter(
    "test_view_records", "Test view records.", ["client", "outcome"], registry=_TEST_METRICS
)


class _CountingView(TopicView):
    """A view of the test topic that takes every record."""

    def _fold(self, raw: bytes | None) -> tuple[str, str | None]:
        return "applied", None


async def test_a_groups_lag_is_what_it_has_not_committed_and_0_once_a_consumer_took_the_rest(
    kafka_bootstrap: str,
):
    topic = _topic()
    ensure_topics(kafka_bootstrap, [topic])
    _produce_one_at_a_time(kafka_bootstrap, topic, RECORDS)
    group = unique_group("lag-test")
    commit_offsets(kafka_bootstrap, group, {0: 2}, topic)  # partition 1: nothing committed yet
    monitor = LagMonitor(kafka_bootstrap, groups={group: [topic]})

    figures = await asyncio.to_thread(monitor.sample)

    assert figures == {(group, topic.name, 0): 3, (group, topic.name, 1): 3}
    assert _exported(group, topic, 0) == 3
    assert _exported(group, topic, 1) == 3

    taken: list[int] = []

    async def handler(records: list[IncomingRecord]) -> list[Rejection]:
        taken.extend(r.offset for r in records)
        return []

    producer = KafkaProducer(kafka_bootstrap, "lag-test")
    consumer = BatchConsumer(
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        group_id=group,
        handler=handler,
        producer=producer,
        decode=False,
    )
    running = asyncio.create_task(consumer.run())
    try:
        await until(holds(lambda: len(taken) == 6), "the consumer to take the rest")
        # It commits once its handler has returned: the figure follows.
        await until(
            lambda: asyncio.to_thread(
                lambda: monitor.sample() == {(group, topic.name, p): 0 for p in RECORDS}
            ),
            "the lag to reach 0",
        )
        assert _exported(group, topic, 0) == 0
        assert _exported(group, topic, 1) == 0
    finally:
        consumer.stop()
        await running
        producer.close()
        await asyncio.to_thread(monitor.close)
    assert _exported(group, topic, 0) is None  # a closed monitor leaves no series behind


async def test_a_views_lag_is_measured_from_how_far_it_has_read(kafka_bootstrap: str):
    topic = _topic()
    ensure_topics(kafka_bootstrap, [topic])
    _produce_one_at_a_time(kafka_bootstrap, topic, RECORDS)
    view = _CountingView(
        kafka_bootstrap,
        topic,
        client_id=f"lag-view-{uuid.uuid4().hex[:6]}",
        age_gauge=_VIEW_AGE,
        records=_VIEW_RECORDS,
    )
    monitor = LagMonitor(kafka_bootstrap, views=[view], interval_s=0.2)
    assert await asyncio.to_thread(monitor.sample) == {}  # not started: nothing to measure yet
    await asyncio.to_thread(view.start)
    assert await asyncio.to_thread(view.wait_ready, 30)
    monitor.start()  # the thread, as the services run it
    try:
        await until(
            holds(lambda: [_exported(view.client_id, topic, p) for p in RECORDS] == [0, 0]),
            "the view's lag, 0 once it has read everything",
        )
        await asyncio.to_thread(view.close)  # it reads no more: what is produced now is its lag
        _produce_one_at_a_time(kafka_bootstrap, topic, {0: 2, 1: 1})
        await until(
            holds(lambda: [_exported(view.client_id, topic, p) for p in RECORDS] == [2, 1]),
            "the view's lag to show the records it has not read",
        )
    finally:
        await asyncio.to_thread(monitor.close)
    assert _exported(view.client_id, topic, 0) is None


async def test_a_sample_without_a_broker_raises_rather_than_wait():
    monitor = LagMonitor("127.0.0.1:9", groups={"g": [_topic()]}, timeout_s=0.5)
    with pytest.raises(KafkaException):
        await asyncio.to_thread(monitor.sample)
    monitor.close()


def _services(platform: PlatformSettings) -> dict[str, tuple[FastAPI, list[tuple[str, str]]]]:
    """Each service that consumes, built on the test broker, and the (group or view, topic) it must report."""
    nobody = f"http://127.0.0.1:{free_port()}"
    ledger = LedgerSettings(consumer_group=unique_group("ledger"), genesis_roles=TEST_ROLES)
    ingest = IngestSettings(decisions_group=unique_group("ingest-decisions"))
    portal = PortalSettings(
        impact_client_id=unique_group("analyst-portal-impact"), rewards_url=nobody, ledger_url=nobody
    )
    return {
        "ledger": (
            create_ledger_app(platform, ledger),
            [(ledger.consumer_group, REWARDS.name), (ledger.merchants_group, MERCHANTS.name)],
        ),
        "ingest": (
            create_ingest_app(platform, ingest),
            [
                (ingest.decisions_group, REWARD_DECISIONS.name),
                ("ingest", CONSENTS.name),
                ("ingest", BINDINGS.name),
            ],
        ),
        "portal": (create_portal_app(portal, platform), [(portal.impact_client_id, ZONE_STATS.name)]),
    }


@pytest.mark.parametrize("service", ["ledger", "ingest", "portal"])
async def test_each_service_exports_the_lag_of_its_own_groups_and_views(
    platform_settings: PlatformSettings, service: str
):
    app, expected = _services(platform_settings)[service]
    async with running(app) as client:

        async def exported() -> bool:
            return set(expected) <= _lag_series((await client.get("/metrics")).text)

        await until(exported, f"{service}'s lag series on /metrics")
    assert not set(expected) & _lag_series(exposition()[0].decode())  # gone once the service stopped


def _lag_series(text: str) -> set[tuple[str, str]]:
    """The (group, topic) of every ``smartcity_consumer_lag`` sample of partition 0 in a /metrics text."""
    return {
        (sample.labels["group"], sample.labels["topic"])
        for family in text_string_to_metric_families(text)
        if family.name == "smartcity_consumer_lag"
        for sample in family.samples
        if sample.labels["partition"] == "0"
    }
