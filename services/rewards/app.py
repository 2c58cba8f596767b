"""The rewards stream processor: a Faust app turning ``city.readings.v1`` into ``city.rewards.v1``, with
a decision per reading on ``city.reward-decisions.v1`` and per-zone statistics on ``city.zone-stats.v1``.

Delivery guarantee: at least once, with idempotent effects (each reward paid exactly once by the ledger).

- The agent takes readings in batches without acknowledging them (``Stream.noack_take``), decides each
  one under the current policy (`services.rewards.engine`), then publishes in two phases, each waiting
  until the broker acknowledged every record (``acks=all``; failed sends are retried until they succeed):
  first the decisions (and DLQ records), then the rewards. Only then does it ack the batch's events.
  Faust commits a partition's offset only up to the first event not acked, so a crash, a kill or a stop
  mid-batch leaves those readings uncommitted, and they are consumed again after the restart.
- The state the decisions depend on (caps per device-hour, wallet-day and person-day, stuck-sensor and burst
  memory, the zone windows, the recent decisions) is kept per readings partition: readings are keyed by
  person, else wallet, so a decision depends on its partition's state only, and workers that split the
  partitions decide as one. It is rebuilt after every start and rebalance from the partition's latest
  snapshot and the decisions after it (`services.rewards.snapshots`, `services.rewards.changelog`). Because
  decisions are acknowledged before any reward they imply, a reading that paid is always found decided, and
  gets the same rewards again: same ids, same amounts. The ledger's unique reward id makes the resend a no-op.
- Zone statistics span partitions: each partition's closed windows go to the zone stage
  (`services.rewards.zone_stage`), keyed by zone, which sums them once every partition has closed them.
- Why not Faust tables: a table's changelog is written key by key, apart from the rewards, so after a kill
  it may hold part of a batch's effects and replayed readings would be decided against a state that
  already counts them (a cap hit twice). And Faust refuses table writes inside a ``take`` batch. One
  decision record per reading is the changelog that avoids both; a snapshot per partition bounds the replay.
- Not exactly-once: Faust's ``exactly_once`` needs Kafka transactions and idempotent producers, which the
  embedded broker (Tansu) does not provide; Faust's own issue tracker advises against that mode anyway.
- Not ``Stream.take``: it acks a batch in a ``finally`` clause, that is even when handling it raised.
- ``stream_wait_empty=False``: on a stop or a rebalance Faust commits what is acked and cancels the batch
  in hand instead of waiting for it; waiting would hang for as long as a batch cannot be acknowledged
  (broker down), and the cancelled batch is simply consumed again.
- The policy file is checked every ``REWARDS_POLICY_RELOAD_S``; a new version applies from the next batch,
  a file that does not validate is refused (logged, counted) and the running policy stays.

Faust creates no topic: the platform creates them (`services.common.kafka.ensure_topics`) with the
registry's partitions, and this app uses neither tables nor a leader topic.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import faust
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from faust import web
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from services.common import attestation, liveness
from services.common.consents import ConsentView
from services.common.dead_letters import DeadLetterProducer
from services.common.kafka import KafkaProducer, OutgoingRecord, attested, client_security
from services.common.lag import LagMonitor, run_with_faust
from services.common.metrics import exposition
from services.common.roles import Role, service_key
from services.common.settings import PlatformSettings
from services.common.topics import READINGS, ZONE_PARTIALS
from services.common.workers import WorkerPool
from services.rewards import snapshots, zones
from services.rewards.changelog import rebuild_partitions
from services.rewards.engine import State
from services.rewards.faust_transport import Transport
from services.rewards.metrics import (
    BATCH_SECONDS,
    BATCH_SIZE,
    RECOVERY_RECORDS,
    RECOVERY_SNAPSHOT,
    observe_batch,
    observe_lag,
)
from services.rewards.openapi import RewardsReadiness
from services.rewards.openapi import document as openapi_document
from services.rewards.policy_file import PolicyFile
from services.rewards.processor import (
    Outcome,
    decisions_record,
    handle_reading,
    header_value,
    reward_batch_records,
)
from services.rewards.publication import PolicyPublisher
from services.rewards.readings import ParsedRecord, parse_all, record_key
from services.rewards.settings import SERVICE, RewardsSettings
from services.rewards.zone_stage import install_zone_stage

log = logging.getLogger(__name__)

FAUST_METRICS_PREFIX = "smartcity_rewards_faust"
MAX_BATCHES_IN_FLIGHT = 4
MAX_BATCHES_VERIFYING = 2
BROKER_CHECK_TIMEOUT_S = 2.0

Verifying = tuple[Sequence[Any], "asyncio.Future[Sequence[ParsedRecord]]", float]
"""A batch taken: its events, the check of their signatures under way, and when it was taken."""


def faust_credentials(platform: PlatformSettings) -> faust.SASLCredentials | None:
    """Faust's (aiokafka's) credentials for the broker, from the same settings as every other client."""
    if not platform.kafka_security_protocol.startswith("SASL"):
        return None
    context = None
    if platform.kafka_security_protocol == "SASL_SSL":
        context = ssl.create_default_context(cafile=platform.kafka_ssl_ca_location)
    password = platform.kafka_sasl_password
    return faust.SASLCredentials(
        username=platform.kafka_sasl_username or "",
        password=password.get_secret_value() if password else "",
        mechanism=platform.kafka_sasl_mechanism,
        ssl_context=context,
    )


def broker_urls(bootstrap_servers: str) -> list[str]:
    """Faust broker URLs (``kafka://host:port``) of a Kafka bootstrap servers list."""
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


@dataclass
class Held:
    """A readings partition's state, the last readings offset decided on it, and when it was last snapshot."""

    state: State
    offset: int = -1
    snapshot_at: float = 0.0
    decided: int = 0  # readings decided since the last snapshot


@dataclass
class Engine:
    """The state of each readings partition the worker holds, the partitions assigned to it, and whether
    they must be rebuilt before the next batch. Each partition's decisions depend on its own state only: a
    worker holding every partition decides as several holding a share each."""

    held: dict[int, Held] = field(default_factory=dict)
    assigned: set[int] = field(default_factory=set)
    stale: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    in_flight: deque[asyncio.Task[None]] = field(default_factory=deque)


def create_app(
    platform: PlatformSettings | None = None, settings: RewardsSettings | None = None
) -> faust.App:
    """The Faust app: the readings agent, its timers and the web pages (``/metrics``, ``/healthz``, ``/readyz``).

    Raises `PolicyError` if the policy file cannot be used.
    """
    platform = platform or PlatformSettings()
    settings = settings or RewardsSettings()
    policy_file = PolicyFile.open(settings.policy_path)
    engine = Engine()
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
        broker_credentials=faust_credentials(platform),
    )
    app.transport = Transport(app.conf.broker_consumer, app)
    # The registry's name and partition count; raw bytes, since the processor decodes and encodes itself.
    readings_topic = app.topic(
        READINGS.name, partitions=READINGS.partitions, key_serializer="raw", value_serializer="raw"
    )
    faust_registry = CollectorRegistry()  # per app, so building a second app does not clash
    app.monitor = PrometheusMonitor(metrics=FaustMetrics.create(faust_registry, FAUST_METRICS_PREFIX))
    admin: list[AdminClient] = []  # created by the first readiness check

    # Outputs go through the platform's confluent-kafka producer rather than Faust's (aiokafka): its
    # librdkafka client batches in C, where aiokafka spends ~100 µs of Python per record, more than the
    # whole decision. Same key partitioner (murmur2) as ingest, so a decision lands on its reading's
    # partition number. Its poll thread is a daemon: nothing to close, every send is awaited anyway.
    producer = KafkaProducer(
        platform.bootstrap_servers, client_id=settings.app_id, send_timeout_s=platform.kafka_send_timeout_s
    )
    # Whose attested readings count, and the key that attests this worker's rewards.
    attestors = frozenset(
        settings.ingest_attestors or [service_key(None, platform.data_dir, Role.INGEST_ATTESTOR).did]
    )
    oracle = service_key(settings.oracle_key, platform.data_dir, Role.REWARDS_ORACLE)
    own_keys = frozenset(
        {oracle.did, *settings.previous_oracles}
    )  # whose decisions and snapshots it recovers
    publisher = PolicyPublisher(settings.ledger_url, oracle, platform.kafka_send_timeout_s)
    # The readings' attestations are checked in other processes while earlier batches are decided.
    pool = WorkerPool(settings.verify_workers, runs=[parse_all]) if settings.verify_workers else None
    progress = liveness.Progress(f"{READINGS.name} agent {settings.app_id}")

    # Decisions that cannot be read back when the state is rebuilt.
    changelog_dead_letters = DeadLetterProducer(
        platform.bootstrap_servers, client_id=f"{settings.app_id}-changelog"
    )
    # The owners' consents (city.consents.v1, every partition, from the beginning): a reading is decided on
    # the consent in force at its own time; the records the view refuses are dead-lettered.
    consent_dead_letters = DeadLetterProducer(
        platform.bootstrap_servers, client_id=f"{settings.app_id}-consents"
    )
    consents = ConsentView(
        platform.bootstrap_servers,
        client_id=f"{settings.app_id}-consents",
        dead_letter=consent_dead_letters,
        history_s=settings.consent_history_s,
    )
    # smartcity_consumer_lag (services/common/lag.py) of the worker's group, on every topic its agents consume,
    # and of its consent view: sampled on a thread from the worker's start until just before it shuts down.
    lag = LagMonitor(
        platform.bootstrap_servers, groups={settings.app_id: [READINGS, ZONE_PARTIALS]}, views=[consents]
    )
    run_with_faust(app, lag)
    consents_following: list[bool] = []  # [True] once the view follows the topic

    @app.on_before_shutdown.connect
    def stop_verifying(sender: faust.App, **kwargs: Any) -> None:
        if pool is not None:
            pool.shutdown()
        changelog_dead_letters.close()
        consents.close()
        consent_dead_letters.close()

    @app.task
    async def follow_consents() -> None:
        """Start the consent view once the worker starts, retrying until the broker answers."""
        while not consents_following:
            try:
                await asyncio.to_thread(consents.start, settings.consents_sync_timeout_s)
            except KafkaException as exc:
                log.warning("consents not followed yet, no reading is decided: %s", exc)
                await asyncio.sleep(1.0)
            else:
                consents_following.append(True)

    async def consents_synced() -> bool:
        """Wait until the consent view folded every change on the topic now; False (logged) if it does not
        follow the topic yet, or the broker or the view did not get there in time."""
        if not consents_following:
            return False
        if await asyncio.to_thread(consents.sync, settings.consents_sync_timeout_s):
            return True
        log.warning("the consent view has not caught up with the consents on the topic; the batch waits")
        return False

    async def publish(records: Sequence[OutgoingRecord]) -> None:
        """Send `records` until the broker acknowledged every one, retrying the failed ones.

        Only a stop (which cancels the agent) interrupts it, leaving the batch unacknowledged.
        """
        pending = list(records)
        backoff_s = 0.2
        while pending:
            errors = await producer.send_batch(pending)
            failed = [record for record, error in zip(pending, errors, strict=True) if error]
            if failed:
                log.warning(
                    "%d of %d sends failed (%s); retrying in %.1fs",
                    len(failed),
                    len(pending),
                    next(error for error in errors if error),
                    backoff_s,
                )
                await asyncio.sleep(backoff_s)
                backoff_s = min(backoff_s * 2, 5.0)
            pending = failed

    def rebuild(partitions: list[int]) -> dict[int, Held]:
        """The states of `partitions`: each from its latest snapshot and the decisions after it, or from
        the rebuild horizon's decisions (blocking I/O)."""
        now = time.time()
        found = snapshots.latest(
            platform.bootstrap_servers, settings.app_id, partitions, settings.recent_decisions, own_keys
        )
        rebuilt = rebuild_partitions(
            platform.bootstrap_servers,
            app_id=settings.app_id,
            oracles=own_keys,
            partitions=partitions,
            since=now - settings.rebuild_horizon_s,
            now=now,
            recent_limit=settings.recent_decisions,
            snapshots=found,
            recent_s=settings.snapshot_recent_s,
            dead_letter=changelog_dead_letters,
        )
        for partition, done in rebuilt.items():
            RECOVERY_RECORDS.labels(str(partition)).set(done.records)
            RECOVERY_SNAPSHOT.labels(str(partition)).set(1 if partition in found else 0)
        return {p: Held(done.state, done.offset, now) for p, done in rebuilt.items()}

    async def ensure_rebuilt(partitions: set[int] | frozenset[int] = frozenset()) -> None:
        """Rebuild the assigned partitions (and `partitions`) if a rebalance made them stale or they are not
        held; the caller holds `engine.lock`."""
        wanted = engine.assigned | partitions
        if not engine.stale and wanted <= engine.held.keys():
            return
        while engine.in_flight:  # our own decisions must be on the topic before reading it back
            await engine.in_flight.popleft()
        engine.held = await asyncio.to_thread(rebuild, sorted(wanted))
        engine.stale = False

    async def finish(
        stream: faust.StreamT,
        events: Sequence[Any],
        outcomes: Sequence[Outcome],
        decided_records: Sequence[OutgoingRecord],
        snapshot_records: Sequence[OutgoingRecord],
        earlier_decided: asyncio.Event,
        decided: asyncio.Event,
        started: float,
    ) -> None:
        """Publish a decided batch: its decisions (and DLQ records), then (once every earlier batch's decisions
        are acknowledged too) its snapshots and rewards; then ack its readings."""
        await publish(decided_records)
        # A replayed reading's rewards rest on an earlier batch's decision, and a snapshot covers every
        # decision before it: those must be durable first.
        await earlier_decided.wait()
        decided.set()
        await publish(attested(oracle, snapshot_records) if snapshot_records else [])
        rewards = [value for outcome in outcomes for value in outcome.rewards]
        await publish(reward_batch_records(oracle, rewards, platform.rewards_per_record))
        for event in events:
            await stream.ack(event)
        progress.committed(len(events))  # acknowledged: Faust commits them within its commit interval
        observe_batch(outcomes, settings.app_id)
        observe_lag(app, events)
        BATCH_SIZE.observe(len(events))
        BATCH_SECONDS.observe(time.perf_counter() - started)

    async def verify(values: list[tuple[bytes | None, bytes | None]]) -> Sequence[ParsedRecord]:
        """`parse_all` of (value, attestation header) pairs, on the worker processes if there are any (and they
        did not fail on this batch), else here."""
        if pool is not None:
            try:
                return await pool.map(parse_all, values, attestors)
            except BrokenProcessPool:
                log.warning("a verification process died; checking %d records here", len(values))
            except Exception:
                log.exception("verification failed; checking %d records here", len(values))
        return parse_all(values, attestors)

    async def decide_batches(stream: faust.StreamT, verified: asyncio.Queue[Verifying]) -> None:
        """Decide the verified batches in the order they were taken, and publish them in a pipeline."""
        in_flight = engine.in_flight
        decided = asyncio.Event()
        decided.set()
        try:
            while True:
                events, verifying, started = await verified.get()
                parsed = await verifying
                policy = policy_file.policy
                await publisher.ensure(policy)  # no reward names a policy the chain does not hold
                # Every consent change on the topic by now is known: a revocation signed before a reading's
                # time is never missed because the reading overtook it (retried until the view answers).
                while not await consents_synced():
                    await asyncio.sleep(1.0)
                async with engine.lock:
                    await ensure_rebuilt({event.message.partition for event in events})
                    now = time.time()
                    outcomes: list[Outcome] = []
                    decided_records: list[OutgoingRecord] = []
                    for event, lines in zip(events, parsed, strict=True):
                        message = event.message
                        held = engine.held[message.partition]
                        first = len(outcomes)
                        for raw, reading in lines:
                            outcomes.append(
                                handle_reading(
                                    raw,
                                    key=record_key(message.key, lines, reading),
                                    partition=message.partition,
                                    offset=message.offset,
                                    headers=message.headers,
                                    policy=policy,
                                    state=held.state,
                                    consumer=settings.app_id,
                                    attestors=attestors,
                                    evidence_key=oracle.seed,
                                    now=now,
                                    parsed=reading,
                                    consents=consents.at,
                                )
                            )
                        held.offset = max(held.offset, message.offset)
                        held.decided += len(lines)
                        of_record = outcomes[first:]
                        decided_records.extend(r for outcome in of_record for r in outcome.records)
                        new = [o.decision for o in of_record if o.decision is not None and not o.replayed]
                        if new:
                            decided_records.append(
                                decisions_record(
                                    new,
                                    message.partition,
                                    message.offset,
                                    settings.app_id,
                                    message.key,
                                    oracle,
                                )
                            )
                    snapshot_records = due_snapshots(now)
                    earlier, decided = decided, asyncio.Event()
                    in_flight.append(
                        asyncio.ensure_future(
                            finish(
                                stream,
                                events,
                                outcomes,
                                decided_records,
                                snapshot_records,
                                earlier,
                                decided,
                                started,
                            )
                        )
                    )
                while in_flight and (len(in_flight) > MAX_BATCHES_IN_FLIGHT or in_flight[0].done()):
                    await in_flight.popleft()
        finally:
            for task in in_flight:
                task.cancel()
            in_flight.clear()

    def due_snapshots(now: float) -> list[OutgoingRecord]:
        """The snapshots of the partitions that decided something and were last snapshot an interval ago,
        captured now (right after a batch was decided: each covers exactly the readings up to its offset)."""
        records = []
        for partition, held in sorted(engine.held.items()):
            if held.decided and held.snapshot_at + settings.snapshot_interval_s <= now:
                records.extend(snapshots.records(settings.app_id, partition, held.offset, now, held.state))
                held.snapshot_at, held.decided = now, 0
        return records

    @app.agent(readings_topic, name="rewards")
    async def reward_readings(stream: faust.StreamT) -> None:
        # A pipeline: the signatures of a batch are checked in the worker processes while earlier batches
        # are decided here (one after the other: the state is sequential), and their records published
        # while later ones are decided (waiting for the broker's acknowledgements of one batch before
        # deciding the next would leave the worker idle most of the time).
        verified: asyncio.Queue[Verifying] = asyncio.Queue(maxsize=MAX_BATCHES_VERIFYING)
        decider = asyncio.ensure_future(decide_batches(stream, verified))
        progress.committed()  # (re)started: what an earlier run held is consumed again
        try:
            # batch_size counts readings: a batch record carries up to readings_per_record of them.
            take = max(1, settings.batch_size // platform.readings_per_record)
            async for events in stream.noack_take(take, within=settings.batch_wait_s):
                progress.took(len(events))
                started = time.perf_counter()
                verifying = asyncio.ensure_future(
                    verify(
                        [
                            (event.message.value, header_value(event.message.headers, attestation.HEADER))
                            for event in events
                        ]
                    )
                )
                queued = asyncio.ensure_future(verified.put((events, verifying, started)))
                await asyncio.wait((queued, decider), return_when=asyncio.FIRST_COMPLETED)
                if decider.done():
                    queued.cancel()
                    verifying.cancel()
                    decider.result()  # raises what stopped it
                    raise RuntimeError("the rewards decider stopped")
        except Exception as exc:
            # Faust would start the agent again, but the readings it held stay unacknowledged: commits
            # would stall behind them. The worker is stuck; `watch` ends it, to be started again.
            progress.stop(exc)
            raise
        finally:
            # Stopping or rebalancing: what is not acknowledged yet is consumed again (and found decided).
            decider.cancel()
            while not verified.empty():
                verified.get_nowait()[1].cancel()

    @app.timer(interval=1.0)
    async def publish_zone_partials() -> None:
        """Send each held partition's closed windows to the zone stage, then its marker (after them: the
        zone stage must have a partition's shares before it hears that its windows are closed)."""
        if not engine.assigned and not engine.held:
            return  # no partition yet
        grace, idle = settings.zone_stats_grace_s, settings.zone_stats_idle_s
        async with engine.lock:
            await ensure_rebuilt()
            now = time.time()
            sent_at = int(now * 1000)  # the attested stamp that lets the zone stage refuse a replay
            partials, markers = [], []
            for partition, held in sorted(engine.held.items()):
                highwater = app.consumer.highwater(TP(READINGS.name, partition))
                caught_up = highwater is not None and held.offset + 1 >= highwater
                for window in held.state.closable(now, grace, idle, caught_up):
                    partials.append(zones.partial_record(window, partition, settings.app_id, sent_at))
                    window.dirty = False  # readings that come meanwhile make it news again
                closed = held.state.closed_through(now, grace, idle, caught_up)
                markers.extend(zones.marker_records(partition, closed, settings.app_id, sent_at))
                held.state.prune()
        await publish(attested(oracle, partials) if partials else [])
        await publish(attested(oracle, markers) if markers else [])

    @app.timer(interval=1.0)
    async def watch() -> None:
        liveness.report_stuck(liveness.stuck([progress], platform.consumer_stall_s))

    @app.timer(interval=settings.policy_reload_s)
    async def reload_policy() -> None:
        await asyncio.to_thread(policy_file.reload)

    zone_stage = install_zone_stage(app, publish, settings, oracle.did)

    @app.on_rebalance_complete.connect
    async def on_rebalance_complete(sender: faust.App, **kwargs: Any) -> None:
        # Partitions may have moved: their decisions must be read back before the next batch (a batch in
        # hand was cancelled, its decisions maybe applied but not published), and the zone stage's shares
        # are delivered again.
        engine.stale = True
        engine.assigned = {tp.partition for tp in sender.consumer.assignment() if tp.topic == READINGS.name}
        zone_stage.forget()
        log.info(
            "consumer group %s: %s partitions %s assigned here",
            settings.app_id,
            READINGS.name,
            sorted(engine.assigned),
        )

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> web.Response:
        return self.json({"status": "ok", "service": SERVICE})

    @app.page("/readyz")
    async def readyz(self: web.View, request: web.Request) -> web.Response:
        if not admin:
            admin.append(AdminClient({"bootstrap.servers": platform.bootstrap_servers, **client_security()}))
        checks = {
            "broker": await asyncio.to_thread(_broker_answers, admin[0]),
            "policy_on_chain": publisher.waiting_since is None,
            # The consent view has caught up with city.consents.v1 and hears from the broker.
            "consents": consents.healthy(settings.consents_sync_timeout_s),
            # Joined the group and sought to the committed offsets at least once, and not rebalancing now.
            "consumer": app.tables.recovery.completed.is_set() and not app.rebalancing,
            # The agent runs and commits what it takes in (`liveness.Progress`).
            "agent": progress.stuck(platform.consumer_stall_s) is None,
        }
        ready = all(checks.values())
        body = RewardsReadiness(
            status="ready" if ready else "not-ready",
            service=SERVICE,
            checks=checks,
            policy_version=policy_file.policy.version,
            policy_hash=policy_file.policy.hash,
        )
        return self.json(body.model_dump(), status=200 if ready else 503)

    @app.page("/openapi.json")
    async def openapi(self: web.View, request: web.Request) -> web.Response:
        return self.json(openapi_document())

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> web.Response:
        payload, content_type = exposition()
        # The content type goes in a header: aiohttp refuses one with a charset as content_type.
        return self.bytes(payload + generate_latest(faust_registry), headers={"Content-Type": content_type})

    app.rewards_policy = policy_file  # the version in force, for the start-up log line
    return app


def _broker_answers(admin: AdminClient) -> bool:
    """True if the broker returns cluster metadata in time (blocking: run it in a thread)."""
    try:
        admin.list_topics(timeout=BROKER_CHECK_TIMEOUT_S)
    except KafkaException:
        return False
    return True
