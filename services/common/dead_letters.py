"""Dead-lettering from a thread that must never wait on the broker (a `ConsentView`'s): `DeadLetterProducer`.

A `BatchConsumer` dead-letters through the shared `KafkaProducer` and awaits the acknowledgement before it
commits; a view that reads every record in every instance, and commits nothing, cannot wait like that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from services.common import events
from services.common.kafka import OutgoingRecord, client_security
from services.common.metrics import DLQ_RECORDS

log = logging.getLogger(__name__)

DeadLetter = Callable[[OutgoingRecord], None]
"""Takes a DLQ entry (`services.common.kafka.dlq_record`) for delivery. It is called on a `ConsentView`'s
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
