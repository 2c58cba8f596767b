"""Dead letters: the DLQ entry of a record a consumer could not process (`dlq_record`: the record, bounded in
size, and the reason), and `DeadLetterProducer`, which sends them from a thread that must never wait on the
broker (a `ConsentView`'s).

A `BatchConsumer` dead-letters through the shared `KafkaProducer` and awaits the acknowledgement before it
commits; a view that reads every record in every instance, and commits nothing, cannot wait like that.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from services.common import events
from services.common.kafka import OutgoingRecord, client_security
from services.common.metrics import DLQ_RECORDS
from services.common.settings import PlatformSettings
from services.common.topics import Topic

log = logging.getLogger(__name__)

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


DeadLetter = Callable[[OutgoingRecord], None]
"""Takes a DLQ entry (`dlq_record`) for delivery. It is called on a `ConsentView`'s
thread, so it must return at once, whatever the broker does."""

DLQ_QUEUE_MAX = 10_000
"""How many DLQ entries a `DeadLetterProducer` holds while the broker is away before it drops new ones."""


class DeadLetterProducer:
    """Sends DLQ entries from a thread that must never wait on the broker (a `ConsentView`'s): a call queues
    the entry in librdkafka and returns; librdkafka delivers it in the background, retrying for as long as
    the broker is away (no delivery deadline), so an outage delays entries rather than losing them.

    Only a full local queue (`queue_max` entries waiting) drops an entry, and a `close` that cannot flush
    loses what is left; both are logged as errors. The view's progress matters more than a copy of a record
    that stays on its own topic anyway.
    """

    def __init__(self, bootstrap_servers: str, client_id: str, *, queue_max: int = DLQ_QUEUE_MAX) -> None:
        self.client_id = client_id
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap_servers,
                **client_security(),
                "client.id": f"{client_id}-dlq",
                # Duplicates are harmless in a DLQ (an entry names its record), and idempotence's fatal
                # states would stop dead-lettering for good.
                "enable.idempotence": False,
                "acks": "all",
                "compression.type": PlatformSettings().kafka_compression,
                "linger.ms": 20,
                "message.timeout.ms": 0,  # no deadline: retried until delivered (or the producer is closed)
                "queue.buffering.max.messages": queue_max,
                # An entry is at most ~70 KB (`dlq_record` bounds it), so the count binds first.
                "queue.buffering.max.kbytes": 1024 * 1024,
                "reconnect.backoff.max.ms": 1000,
            }
        )

    def __call__(self, record: OutgoingRecord) -> None:
        """Queue `record` for delivery and return at once; never raises."""
        value = record.value
        source = (
            str(value.get("source_topic", record.topic.name))
            if isinstance(value, dict)
            else record.topic.name
        )

        def delivered(err: KafkaError | None, _message: Message) -> None:
            if err is None:
                DLQ_RECORDS.labels(source, self.client_id).inc()
            else:  # not retriable (e.g. not authorised): retrying would not help
                log.error("DLQ entry for a %s record lost: %s", source, err.str())

        try:
            self._producer.produce(
                record.topic.name,
                key=record.key.encode(),
                value=value if isinstance(value, bytes) else events.encode_json(value),
                headers=record.headers,
                on_delivery=delivered,
            )
        except (BufferError, KafkaException) as exc:
            log.error("DLQ entry for a %s record dropped: %s (%d entries waiting)", source, exc, self.pending)
        try:
            self._producer.poll(0)  # serve the delivery reports of earlier entries
        except KafkaException as exc:
            log.error("DLQ producer: %s", exc)

    @property
    def pending(self) -> int:
        """Entries queued or in flight, not yet acknowledged."""
        return len(self._producer)

    def close(self, timeout_s: float = 5.0) -> int:
        """Deliver what is queued, for at most `timeout_s`; return how many entries were not delivered."""
        left = self._producer.flush(timeout_s)
        if left:
            log.error("closing with %d DLQ entries undelivered", left)
        return left
