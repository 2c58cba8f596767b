"""`BatchConsumer`: consumes a topic in batches, hands decoded records to a handler whose effect must be durable
when it returns, then commits the offsets. A record that cannot be decoded, does not fit its topic's schema,
that the handler rejects, or on which the handler raises goes to the topic's DLQ with the reason
(`services.common.dead_letters`), and the consumer keeps going. Delivery is at-least-once: handlers must be
idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message

from services.common import events, schemas
from services.common.dead_letters import dlq_record, dlq_record_of
from services.common.kafka import (
    FETCH_WAIT_MAX_MS,
    BrokerUnavailableError,
    KafkaProducer,
    OutgoingRecord,
    client_security,
)
from services.common.liveness import Progress
from services.common.metrics import CONSUMER_BATCHES, CONSUMER_RECORDS, DLQ_RECORDS
from services.common.topics import Topic

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, BrokerUnavailableError)
"""Exceptions of a handler that say a dependency failed, not the record: the batch is retried until it passes."""
POISON_ATTEMPTS = 3
"""How often a single record on which the handler raises anything else is tried before it is dead-lettered."""


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
