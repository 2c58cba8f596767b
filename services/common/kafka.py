"""Kafka producer and consumer on confluent-kafka, for asyncio services.

- `KafkaProducer`: idempotent, ``acks=all``; a send is done only when the broker acknowledged it.
  librdkafka's delivery callbacks run on a poll thread and resolve asyncio futures, so the event
  loop never blocks.
- `BatchConsumer`: consumes batches, hands decoded records to a handler whose effect must be durable
  when it returns, then commits the offsets. A record that cannot be decoded, does not fit its
  topic's schema, that the handler rejects, or on which the handler raises goes to the topic's DLQ with
  the reason, and the consumer keeps going. Delivery is at-least-once: handlers must be idempotent.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.common import attestation, events, schemas
from services.common.liveness import Progress
from services.common.metrics import CONSUMER_BATCHES, CONSUMER_RECORDS, DLQ_RECORDS, PRODUCED_RECORDS
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import Topic

log = logging.getLogger(__name__)

FETCH_WAIT_MAX_MS = 100
"""How long a consumer's fetch waits at the broker for records, for every consumer of the platform. Kafka
answers a waiting fetch as soon as records come, but the embedded broker (Tansu) only at the wait's end: with
librdkafka's 500 ms (Faust's 1,500 ms) a record then waited ~0.4 s at each hop (measured). At 100 ms an idle
consumer costs the broker ten empty fetches a second."""


@cache
def client_security() -> dict[str, str]:
    """The librdkafka settings of this process's Kafka credentials (``KAFKA_SECURITY_PROTOCOL``,
    ``KAFKA_SASL_*``), read from the environment once; every client of the platform includes them."""
    return PlatformSettings().kafka_security()


class BrokerUnavailableError(RuntimeError):
    """The broker did not acknowledge in time."""


TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, BrokerUnavailableError)
"""Exceptions of a handler that say a dependency failed, not the record: the batch is retried until it passes."""
POISON_ATTEMPTS = 3
"""How often a single record on which the handler raises anything else is tried before it is dead-lettered."""


@dataclass(frozen=True)
class OutgoingRecord:
    """A record to produce: value is JSON-encoded (bytes are sent as they are, None is a tombstone: no value),
    headers are CloudEvents attributes (and an attestation, see `attested`)."""

    topic: Topic
    key: str
    value: Any
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    partition: int | None = None
    """Where it goes when not where its key hashes to (a record every partition of a topic gets)."""


def attested(keypair: Keypair, records: Sequence[OutgoingRecord]) -> list[OutgoingRecord]:
    """`records` attested by `keypair` (`services.common.attestation`): each value as its JCS bytes, with its
    attestation header over the part its topic attests (`Topic.attested_part`); one signature per topic of
    the batch."""
    by_topic: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        by_topic.setdefault(record.topic.name, []).append(index)
    out = list(records)
    for topic, indexes in by_topic.items():
        values = [attestation.encode(records[i].value) for i in indexes]
        covered = [
            value if r.topic.attested_member is None else attestation.encode(r.topic.attested_part(r.value))
            for value, r in zip(values, (records[i] for i in indexes), strict=True)
        ]
        for i, value, header in zip(
            indexes, values, attestation.attest(keypair, topic, covered), strict=True
        ):
            record = records[i]
            headers = [(k, v) for k, v in record.headers if k != attestation.HEADER]
            out[i] = replace(record, value=value, headers=[*headers, (attestation.HEADER, header.encode())])
    return out


def partition_of(key: str, partitions: int) -> int:
    """The partition a key hashes to: Kafka's default partitioner (murmur2, as the producer's
    ``murmur2_random`` and the Java client), so a record sent to an explicit partition lands where its key
    would, and a consumer can tell a record on a partition its key does not hash to."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def batch_record(
    keypair: Keypair,
    topic: Topic,
    key: str,
    partition: int | None,
    lines: Sequence[bytes],
    headers: list[tuple[str, bytes]],
) -> OutgoingRecord:
    """One record carrying `lines` (values' JCS bytes, `attestation.encode`) joined by newlines, with `headers`
    and its attestation by `keypair`: one statement about exactly those lines (`attestation.attest_record`),
    which a consumer checks with `attestation.verify_record`. Raises ValueError for no lines or too many."""
    header = attestation.attest_record(keypair, topic.name, lines)
    return OutgoingRecord(
        topic, key, b"\n".join(lines), [*headers, (attestation.HEADER, header.encode())], partition
    )


class _BatchAck:
    """Counts down the delivery reports of one batch and resolves a future when all arrived."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.loop = loop
        self.remaining = size
        self.errors: list[str | None] = [None] * size
        self.delivered = [False] * size
        self.done: asyncio.Future[list[str | None]] = loop.create_future()
        self._lock = threading.Lock()

    def report(self, index: int, err: KafkaError | None) -> None:
        with self._lock:
            if err is not None:
                self.errors[index] = err.str()
            self.delivered[index] = True
            self.remaining -= 1
            finished = self.remaining == 0
        if finished:
            self.loop.call_soon_threadsafe(self._resolve)

    def _resolve(self) -> None:
        if not self.done.done():
            self.done.set_result(self.errors)


class KafkaProducer:
    """An idempotent producer shared by a process; `send_batch` returns once the broker acknowledged."""

    def __init__(self, bootstrap_servers: str, client_id: str, send_timeout_s: float = 10.0) -> None:
        self.send_timeout_s = send_timeout_s
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                **client_security(),
                "client.id": client_id,
                "enable.idempotence": True,
                # The Java client's (and aiokafka's) partitioner, so every producer of a topic agrees on key -> partition.
                "partitioner": "murmur2_random",
                "acks": "all",
                "linger.ms": 5,
                "batch.num.messages": 10000,
                "compression.type": "lz4",
                "message.timeout.ms": int(send_timeout_s * 1000),
                "reconnect.backoff.max.ms": 1000,
            }
        )
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name=f"{client_id}-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(0.05)

    async def send_batch(self, records: Sequence[OutgoingRecord]) -> list[str | None]:
        """Produce `records`; return, per record, None once acknowledged or the delivery error.

        Waits at most the send timeout; on a deadline every unacknowledged record reports an error.
        """
        if not records:
            return []
        loop = asyncio.get_running_loop()
        ack = _BatchAck(loop, len(records))
        for index, record in enumerate(records):
            self._produce(record, lambda err, _msg, i=index: ack.report(i, err))
        try:
            errors = await asyncio.wait_for(asyncio.shield(ack.done), self.send_timeout_s + 1)
        except TimeoutError:
            errors = [
                error if delivered else "broker acknowledgement timed out"
                for error, delivered in zip(ack.errors, ack.delivered, strict=True)
            ]
        # Counted per topic and outcome, not per record: a label lookup costs as much as a record's encoding.
        outcomes = Counter(
            (record.topic.name, "error" if error else "ok")
            for record, error in zip(records, errors, strict=True)
        )
        for (topic, outcome), count in outcomes.items():
            PRODUCED_RECORDS.labels(topic, outcome).inc(count)
        return errors

    async def send(self, record: OutgoingRecord) -> None:
        """Produce one record; raise `BrokerUnavailableError` unless the broker acknowledged it."""
        (error,) = await self.send_batch([record])
        if error:
            raise BrokerUnavailableError(error)

    def _produce(
        self, record: OutgoingRecord, on_delivery: Callable[[KafkaError | None, Message], None]
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    record.topic.name,
                    key=record.key.encode(),
                    value=record.value
                    if record.value is None or isinstance(record.value, bytes)
                    else events.encode_json(record.value),
                    headers=record.headers,
                    on_delivery=on_delivery,
                    **({} if record.partition is None else {"partition": record.partition}),
                )
                return
            except BufferError:
                # The local queue is full: let the poll thread drain delivery reports, then retry.
                self._producer.flush(0.1)

    def broker_answers(self, timeout_s: float = 2.0) -> bool:
        """True if the broker returns cluster metadata within the timeout (blocking: use a thread)."""
        try:
            self._producer.list_topics(timeout=timeout_s)
        except KafkaException:
            return False
        return True

    def close(self, timeout_s: float = 5.0) -> None:
        self._producer.flush(timeout_s)
        self._closed.set()
        self._poller.join(timeout=1)


@dataclass(frozen=True)
class IncomingRecord:
    """A consumed record whose value parsed as JSON and fits its topic's schema (`value` is None where the
    handler decodes and checks `raw` itself: see `BatchConsumer`'s `decode`)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: Any
    headers: dict[str, str]
    raw: bytes


@dataclass(frozen=True)
class Rejection:
    """A record the handler could not process, and why."""

    record: IncomingRecord
    reason: str


Handler = Callable[[list[IncomingRecord]], Awaitable[list[Rejection]]]


DLQ_VALUE_MAX = 64 * 1024
"""The largest source value a DLQ entry carries whole; above it, its first `DLQ_PREFIX` bytes, size and hash.
Every DLQ entry then stays far below the broker's message size limit (1 MB by default), so dead-lettering a
huge record cannot fail, and the consumer moves on."""
DLQ_PREFIX = 1024
DLQ_REASON_MAX = 2000
DLQ_HEADER_MAX = 4096


def dlq_record(
    topic: Topic,
    *,
    key: bytes | None,
    raw: bytes | None,
    partition: int,
    offset: int,
    reason: str,
    consumer: str,
    headers: list[tuple[str, bytes]] | None = None,
) -> OutgoingRecord:
    """The dead-letter record for a message of `topic` that `consumer` could not process: bounded in size
    whatever the message (`DLQ_VALUE_MAX`, `DLQ_REASON_MAX`, headers up to `DLQ_HEADER_MAX` each)."""
    kept = raw if raw is None or len(raw) <= DLQ_VALUE_MAX else raw[:DLQ_PREFIX]
    text: str | None
    try:
        text = kept.decode("utf-8") if kept is not None else None
        encoding = "utf-8"
    except UnicodeDecodeError:
        text = base64.b64encode(kept or b"").decode("ascii")
        encoding = "base64"
    reason = reason if len(reason) <= DLQ_REASON_MAX else reason[: DLQ_REASON_MAX - 1] + "…"
    envelope = {
        "reason": reason,
        "consumer": consumer,
        "source_topic": topic.name,
        "partition": partition,
        "offset": offset,
        "key": (key or b"")[:DLQ_HEADER_MAX].decode("utf-8", "replace"),
        "value": text,
        "value_encoding": encoding,
        "value_size": len(raw or b""),
        "value_sha256": hashlib.sha256(raw or b"").hexdigest(),
        "value_truncated": kept is not raw,
        "failed_at": events.now_rfc3339(),
    }
    original = [
        (k, v) for k, v in headers or [] if not k.startswith("dlq_") and len(v or b"") <= DLQ_HEADER_MAX
    ]
    return OutgoingRecord(
        topic=topic.dlq,
        key=envelope["key"],
        value=envelope,
        headers=[*original, ("dlq_reason", reason.encode())],
    )


def dlq_record_of(topic: Topic, message: Message, reason: str, consumer: str) -> OutgoingRecord:
    """`dlq_record` of a consumed message of `topic`: its key, value, coordinates and headers."""
    return dlq_record(
        topic,
        key=message.key(),
        raw=message.value(),
        partition=message.partition(),
        offset=message.offset(),
        reason=reason,
        consumer=consumer,
        headers=message.headers(),
    )


class BatchConsumer:
    """Consumes `topic` in batches; commits only after the handler's effect is durable."""

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        topic: Topic,
        group_id: str,
        handler: Handler,
        producer: KafkaProducer,
        batch_size: int = 500,
        poll_timeout_s: float = 0.2,
        session_timeout_ms: int = 6000,
        decode: bool = True,
        transient: tuple[type[BaseException], ...] = TRANSIENT_ERRORS,
    ) -> None:
        """With `decode` False, values reach the handler undecoded (`raw`; `value` None): a handler that
        decodes and validates them in worker processes must not pay for it twice here. `transient` are the
        handler's exceptions that say a dependency failed (retried); any other isolates the record it
        comes from, which is dead-lettered (`POISON_ATTEMPTS`)."""
        self.decode = decode
        self.topic = topic
        self.group_id = group_id
        self.handler = handler
        self.producer = producer
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.transient = transient
        self.progress = Progress(f"{topic.name} consumer {group_id}")
        self._stopping = asyncio.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                **client_security(),
                "group.id": group_id,
                "client.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(500, session_timeout_ms // 6),
                "max.poll.interval.ms": max(60000, session_timeout_ms),
                "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
                "isolation.level": "read_uncommitted",
            }
        )

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Consume until `stop()`; a handler failing on a dependency is retried with backoff (effects are
        idempotent); `progress` says whether the consumer moves."""
        self._consumer.subscribe([self.topic.name])
        try:
            while not self._stopping.is_set():
                messages = await asyncio.to_thread(self._take)
                if messages:
                    self.progress.took(len(messages))
                    await self._process(messages)
        except BaseException as exc:
            if not self._stopping.is_set():
                self.progress.stop(exc)
            raise
        finally:
            await asyncio.to_thread(self._consumer.close)

    def _take(self) -> list[Message]:
        """The next batch: what has come, up to `batch_size`, waiting up to `poll_timeout_s` only while nothing
        has. (``consume(n, timeout)`` would wait out its timeout for n records: below saturation, every record
        would wait it at each hop.) Under load, records come while a batch is handled, so batches grow."""
        first = self._consumer.poll(self.poll_timeout_s)
        if first is None:
            return []
        return [first, *self._consumer.consume(self.batch_size - 1, 0)] if self.batch_size > 1 else [first]

    async def _process(self, messages: list[Message]) -> None:
        records, dead = self._decode(messages)
        rejections = await self._handle(records)
        for rejection in rejections:
            r = rejection.record
            dead.append(
                dlq_record(
                    self.topic,
                    key=r.key.encode() if r.key is not None else None,
                    raw=r.raw,
                    partition=r.partition,
                    offset=r.offset,
                    reason=rejection.reason,
                    consumer=self.group_id,
                    headers=[(k, v.encode()) for k, v in r.headers.items()],
                )
            )
        await self._dead_letter(dead)
        CONSUMER_BATCHES.labels(self.topic.name, self.group_id).inc()
        CONSUMER_RECORDS.labels(self.topic.name, self.group_id).inc(len(messages))
        try:
            await asyncio.to_thread(self._consumer.commit, asynchronous=False)
        except KafkaException as exc:
            # Typically a rebalance revoked the partitions; the new owner redelivers, effects are idempotent.
            log.warning("offset commit failed on %s: %s", self.topic.name, exc)
            return
        self.progress.committed()

    async def _handle(self, records: list[IncomingRecord]) -> list[Rejection]:
        """The handler's rejections of `records`, once its effect is durable.

        A transient error is retried with backoff until it passes (or the consumer stops). On any other
        exception the batch is split in halves, handled one after the other, down to the record the handler
        raises on: that one is tried `POISON_ATTEMPTS` times, then rejected with the exception as reason.
        """
        backoff, attempts = 0.2, 0
        while records:
            try:
                return await self.handler(records)
            except Exception as exc:
                if self._stopping.is_set():
                    raise
                if not isinstance(exc, self.transient):
                    if len(records) > 1:
                        half = len(records) // 2
                        return [*await self._handle(records[:half]), *await self._handle(records[half:])]
                    attempts += 1
                    if attempts >= POISON_ATTEMPTS:
                        (record,) = records
                        log.exception(
                            "the handler raises on %s[%d]@%d; dead-lettering it",
                            record.topic,
                            record.partition,
                            record.offset,
                        )
                        return [Rejection(record, f"handler error: {type(exc).__name__}: {exc}")]
                log.warning(
                    "handler failed on %d %s records (%s: %s); retrying in %.1fs",
                    len(records),
                    self.topic.name,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
        return []

    def _decode(self, messages: list[Message]) -> tuple[list[IncomingRecord], list[OutgoingRecord]]:
        records: list[IncomingRecord] = []
        dead: list[OutgoingRecord] = []
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consumer error on %s: %s", self.topic.name, msg.error())
                continue
            raw = msg.value()
            value = None
            try:
                if self.decode:
                    value = events.decode_json(raw)
                    schemas.validate(self.topic, value)
            except (ValueError, schemas.SchemaError) as exc:
                reason = (
                    f"schema: {exc}" if isinstance(exc, schemas.SchemaError) else f"malformed JSON: {exc}"
                )
                dead.append(dlq_record_of(self.topic, msg, reason, self.group_id))
                continue
            key = msg.key()
            records.append(
                IncomingRecord(
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    key=key.decode("utf-8", "replace") if key is not None else None,
                    value=value,
                    headers=events.headers_dict(msg.headers()),
                    raw=raw,
                )
            )
        return records, dead

    async def _dead_letter(self, dead: list[OutgoingRecord]) -> None:
        while dead:
            errors = await self.producer.send_batch(dead)
            for record in dead:
                DLQ_RECORDS.labels(self.topic.name, self.group_id).inc()
                log.warning("dead-lettered a %s record: %s", self.topic.name, record.value["reason"])
            dead = [record for record, error in zip(dead, errors, strict=True) if error]
            if dead:
                # Offsets must not move past a record that is neither processed nor dead-lettered.
                log.error("DLQ send failed for %d records; retrying", len(dead))
                await asyncio.sleep(1)


def ensure_topics(
    bootstrap_servers: str, topics: Sequence[Topic], replication_factor: int = 1, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet, with their partitions and cleanup policy.

    Returns the names it created. Blocking; call it at start-up (or through `asyncio.to_thread`).
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, **client_security()})
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(t.name, num_partitions=t.partitions, replication_factor=replication_factor, config=t.config)
        for t in topics
        if t.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
