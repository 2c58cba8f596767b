"""Kafka on confluent-kafka, for asyncio services: the records services produce, `KafkaProducer`, and the
settings and topics every client shares.

`KafkaProducer` is idempotent, ``acks=all``; a send is done only when the broker acknowledged it. librdkafka's
delivery callbacks run on a poll thread and resolve asyncio futures, so the event loop never blocks. Consuming
is `services.common.batch_consumer`'s; dead-letter entries are `services.common.dead_letters`'.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Any

from aiokafka.partitioner import murmur2
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.common import attestation, events
from services.common.metrics import PRODUCED_RECORDS
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


@lru_cache(maxsize=100_000)
def partition_of(key: str, partitions: int) -> int:
    """The partition a key hashes to: Kafka's default partitioner (murmur2, as the producer's
    ``murmur2_random`` and the Java client), so a record sent to an explicit partition lands where its key
    would, and a consumer can tell a record on a partition its key does not hash to. Memoised: the same
    devices, wallets and zones come back with every batch, and murmur2 in Python costs ~11 µs a key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def batch_record(
    keypair: Keypair,
    topic: Topic,
    key: str,
    partition: int | None,
    lines: Sequence[bytes],
    headers: list[tuple[str, bytes]],
    covered: Sequence[bytes] | None = None,
) -> OutgoingRecord:
    """One record carrying `lines` (values' JCS bytes, `attestation.encode`) joined by newlines, with `headers`
    and its attestation by `keypair`: one statement about exactly those lines (`attestation.attest_record`),
    which a consumer checks with `attestation.verify_record`; or, for a topic attesting a part of each value,
    about their `covered` parts (`attestation.verify_covered`). Raises ValueError for no lines or too many."""
    header = attestation.attest_record(keypair, topic.name, lines, covered)
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
                "compression.type": PlatformSettings().kafka_compression,
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
