"""The rewards stream processor: a Faust app turning ``city.readings.v1`` into ``city.rewards.v1``.

Delivery guarantee: at least once, with idempotent effects.

- The agent takes readings in batches without acknowledging them (``Stream.noack_take``), produces every
  reward and DLQ record of the batch, and waits until the broker has acknowledged each one (``acks=all``;
  failed sends are retried until they succeed). Only then does it ack the batch's events. Faust commits a
  partition's offset only up to the first event not acked, so a crash, a kill or a stop mid-batch leaves
  those readings uncommitted, and they are consumed again after the restart or rebalance.
- Redelivery is harmless: a reading always yields the same reward, byte for byte (the reward id is derived
  from the reading id and the rule, the value is RFC 8785 JSON, ``ce_time`` is the reading's time), and the
  ledger's unique reward id keeps a reward from paying twice. A DLQ record may be written twice.
- Not exactly-once: Faust's ``exactly_once`` needs Kafka transactions and idempotent producers, which the
  embedded broker (Tansu) does not provide; Faust's own issue tracker advises against that mode anyway.
- Not ``Stream.take``: it acks a batch in a ``finally`` clause, that is even when handling it raised.
- ``stream_wait_empty=False``: on a stop or a rebalance Faust commits what is acked and cancels the batch
  in hand instead of waiting for it; waiting would hang for as long as a batch cannot be acknowledged
  (broker down), and the cancelled batch is simply consumed again.

Faust creates no topic: the platform creates them (`services.common.kafka.ensure_topics`) with the
registry's partitions, and this app uses neither tables nor a leader topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from faust import web
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from services.common.kafka import OutgoingRecord
from services.common.metrics import DLQ_RECORDS, PRODUCED_RECORDS, exposition
from services.common.settings import PlatformSettings
from services.common.topics import READINGS
from services.rewards.policy import Policy
from services.rewards.processor import Outcome, encode_value, handle_reading
from services.rewards.rules import FlatRule
from services.rewards.settings import SERVICE, RewardsSettings

log = logging.getLogger(__name__)

READINGS_PROCESSED = Counter(
    "smartcity_rewards_readings_total",
    "Readings processed, by outcome (rewarded, unrewarded: no rule applied, rejected: dead-lettered).",
    ["outcome"],
)
REWARDS_PRODUCED = Counter(
    "smartcity_rewards_produced_total", "Rewards produced (broker-acknowledged), by rule.", ["rule"]
)
REWARDED_MICRO_UNITS = Counter(
    "smartcity_rewards_micro_units_total", "Micro-units paid out in produced rewards.", ["rule", "currency"]
)
REJECTIONS = Counter("smartcity_rewards_rejections_total", "Readings sent to the DLQ, by reason.", ["reason"])
BATCH_SECONDS = Histogram(
    "smartcity_rewards_batch_duration_seconds",
    "Time from taking a batch of readings to the broker acknowledging all its output records.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "smartcity_rewards_batch_size", "Readings per batch.", buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000)
)

FAUST_METRICS_PREFIX = "smartcity_rewards_faust"
BROKER_CHECK_TIMEOUT_S = 2.0


def broker_urls(bootstrap_servers: str) -> list[str]:
    """Faust broker URLs (``kafka://host:port``) of a Kafka bootstrap servers list."""
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


def create_policy(settings: RewardsSettings) -> Policy:
    """The reward policy: one flat rule for now."""
    return Policy(version=settings.policy_version, rules=(FlatRule(settings.rule, settings.flat_amount),))


def create_app(
    platform: PlatformSettings | None = None, settings: RewardsSettings | None = None
) -> faust.App:
    """The Faust app: the readings agent and the web pages (``/metrics``, ``/healthz``, ``/readyz``)."""
    platform = platform or PlatformSettings()
    settings = settings or RewardsSettings()
    policy = create_policy(settings)
    session_timeout_s = platform.kafka_session_timeout_ms / 1000
    datadir = platform.data_dir / SERVICE
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates datadir itself, but not its parents
    app = faust.App(
        settings.app_id,
        broker=broker_urls(platform.bootstrap_servers),
        processing_guarantee="at_least_once",
        producer_acks=-1,
        # Fail a send after this long instead of aiokafka's 20 minutes; the agent retries it.
        producer_request_timeout=platform.kafka_send_timeout_s,
        # Tansu takes about half the session timeout to complete a group join.
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=max(0.5, session_timeout_s / 6),
        # Topics come from the registry, created beforehand; no tables, no on_leader timers.
        topic_allow_declare=False,
        topic_disable_leader=True,
        # Stop and rebalance without waiting for the batch in hand (see the module docstring).
        stream_wait_empty=False,
        web_bind=platform.bind_host,
        web_host=platform.bind_host,
        web_port=settings.web_port,
        datadir=str(datadir),
    )
    # The registry's name and partition count; raw bytes, since the processor decodes and encodes itself.
    readings_topic = app.topic(
        READINGS.name, partitions=READINGS.partitions, key_serializer="raw", value_serializer="raw"
    )
    faust_registry = CollectorRegistry()  # per app, so building a second app does not clash
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(faust_registry, FAUST_METRICS_PREFIX))
    admin: list[AdminClient] = []  # created by the first readiness check

    async def send(record: OutgoingRecord) -> None:
        """Produce one record and wait for the broker's acknowledgement."""
        # Through the producer rather than Topic.send: on a failed send, Topic.send also fails a second
        # future that nobody can await, which asyncio then logs as "exception was never retrieved".
        delivery = await app.producer.send(
            record.topic.name,
            record.key.encode(),
            encode_value(record),
            partition=None,  # the producer's key partitioner: one wallet, one partition
            timestamp=None,
            headers=record.headers,
        )
        await delivery

    async def publish(records: Sequence[OutgoingRecord]) -> None:
        """Send `records` until the broker acknowledged every one, retrying the failed ones.

        Only a stop (which cancels the agent) interrupts it, leaving the batch unacknowledged.
        """
        pending = list(records)
        backoff_s = 0.2
        while pending:
            results = await asyncio.gather(*(send(r) for r in pending), return_exceptions=True)
            failed = []
            for record, result in zip(pending, results, strict=True):
                PRODUCED_RECORDS.labels(record.topic.name, "ok" if result is None else "error").inc()
                if result is not None:
                    failed.append(record)
            if failed:
                error = next(r for r in results if r is not None)
                log.warning(
                    "%d of %d sends failed (%r); retrying in %.1fs",
                    len(failed),
                    len(pending),
                    error,
                    backoff_s,
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
            pending = failed

    @app.agent(readings_topic, name="rewards")
    async def reward_readings(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(settings.batch_size, within=settings.batch_wait_s):
            started = time.perf_counter()
            outcomes = [
                handle_reading(
                    event.message.value,
                    key=event.message.key,
                    partition=event.message.partition,
                    offset=event.message.offset,
                    headers=event.message.headers,
                    policy=policy,
                    consumer=settings.app_id,
                )
                for event in events
            ]
            await publish([record for outcome in outcomes for record in outcome.records])
            for event in events:
                await stream.ack(event)
            _observe(outcomes, settings.app_id)
            BATCH_SIZE.observe(len(events))
            BATCH_SECONDS.observe(time.perf_counter() - started)

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(sender: faust.App, **kwargs: Any) -> None:
        assigned = sorted(tp.partition for tp in sender.consumer.assignment() if tp.topic == READINGS.name)
        log.info(
            "consumer group %s: %s partitions %s assigned here", settings.app_id, READINGS.name, assigned
        )

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "ok", "service": SERVICE})

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        if not admin:
            admin.append(AdminClient({"bootstrap.servers": platform.bootstrap_servers}))
        checks = {
            "broker": await asyncio.to_thread(_broker_answers, admin[0]),
            # Joined the group and sought to the committed offsets at least once, and not rebalancing now.
            "consumer": app.tables.recovery.completed.is_set() and not app.rebalancing,
        }
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not-ready", "service": SERVICE, "checks": checks}
        return self.json(body, status=200 if ready else 503)

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> web.Response:
        payload, content_type = exposition()
        # The content type goes in a header: aiohttp refuses one with a charset as content_type.
        return self.bytes(payload + generate_latest(faust_registry), headers={"Content-Type": content_type})

    return app


def _observe(outcomes: Sequence[Outcome], consumer: str) -> None:
    """Count a batch whose records the broker acknowledged."""
    for outcome in outcomes:
        if outcome.rejection is not None:
            READINGS_PROCESSED.labels("rejected").inc()
            REJECTIONS.labels(outcome.rejection).inc()
            DLQ_RECORDS.labels(READINGS.name, consumer).inc()
            dead = outcome.records[0].value
            log.warning(
                "dead-lettered %s[%s]@%s: %s",
                READINGS.name,
                dead["partition"],
                dead["offset"],
                dead["reason"],
            )
            continue
        READINGS_PROCESSED.labels("rewarded" if outcome.rewards else "unrewarded").inc()
        for reward in outcome.rewards:
            REWARDS_PRODUCED.labels(reward["rule"]).inc()
            REWARDED_MICRO_UNITS.labels(reward["rule"], reward["currency"]).inc(reward["amount"])


def _broker_answers(admin: AdminClient) -> bool:
    """True if the broker returns cluster metadata in time (blocking: run it in a thread)."""
    try:
        admin.list_topics(timeout=BROKER_CHECK_TIMEOUT_S)
    except KafkaException:
        return False
    return True
