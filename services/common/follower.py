"""`TopicView`: the part of an in-memory view of a compacted topic that does not depend on what the topic
holds. A background thread follows every partition from the beginning and hands each record to the
subclass's `_fold`; a record the fold refuses (or whose fold raises) is logged, counted and, when the view is
given a `DeadLetter`, sent to the topic's DLQ with the reason. `ConsentView` (``city.consents.v1``) and
`BindingView` (``city.bindings.v1``) are such views.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Gauge

from services.common.dead_letters import DeadLetter, dlq_record_of
from services.common.kafka import FETCH_WAIT_MAX_MS, client_security
from services.common.topics import Topic

log = logging.getLogger(__name__)


class TopicView:
    """Follows `topic` from the beginning, on a background thread, folding every record with `_fold`.

    Every instance reads every partition itself (assigned, not subscribed: no consumer group, no committed
    offsets), because every instance must know every record. Compaction may or may not have run, so the fold
    must keep the latest state per key whatever it is given. `age_s` says how long ago the view last heard
    from the broker: a change reaches the view within about `age_s` plus the broker's delivery time.

    A record the fold refuses, and one whose fold raises (a bug must not stop the records behind it), is
    logged and counted; with a `dead_letter`, each goes to the topic's DLQ with the reason. Since every
    instance reads every record, and reads them all again when it restarts, several entries may stand for one
    record: an entry names the view (`consumer`, its `client_id`) and the record's partition and offset.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        topic: Topic,
        *,
        client_id: str,
        age_gauge: Gauge,
        records: Counter,
        poll_timeout_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        """`age_gauge` (label: client) and `records` (labels: client, outcome) are the view's metrics;
        `dead_letter` receives the DLQ entry of every refused record and stays the caller's to close."""
        self.topic = topic
        self.client_id = client_id
        self.poll_timeout_s = poll_timeout_s
        self._clock = clock
        self._dead_letter = dead_letter
        self._records_metric = records
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap_servers,
                **client_security(),
                # Required by the client even when assigning; never joined (no subscribe) nor committed.
                "group.id": f"{client_id}-{uuid.uuid4().hex[:12]}",
                "client.id": client_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "enable.partition.eof": True,  # tells `wait_ready` a partition is read to its end
                "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,  # changes must show up quickly
                "isolation.level": "read_uncommitted",
            }
        )
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._last_heard = clock()
        self._records = 0
        self._catch_up: dict[int, int] = {}
        self._partitions: list[int] = []
        self._bootstrap_servers = bootstrap_servers
        self._sync_lock = threading.Lock()
        self._offsets: Consumer | None = None  # asks the end offsets for `sync`, created by the first
        self._positions: dict[int, int] = {}  # per partition, the offset after the last record folded in
        name = topic.name.removeprefix("city.").removesuffix(".v1")
        self._thread = threading.Thread(target=self._run, name=f"{client_id}-{name}", daemon=True)
        age_gauge.labels(client_id).set_function(lambda: self.age_s)

    def start(self, timeout_s: float = 10.0) -> None:
        """Assign every partition of the topic at its beginning and start following it."""
        metadata = self._consumer.list_topics(self.topic.name, timeout=timeout_s)
        partitions = sorted(metadata.topics[self.topic.name].partitions)
        if not partitions:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"no topic {self.topic.name}"))
        # What "caught up" means: every record that existed when we started has been folded in.
        ends = {
            p: self._consumer.get_watermark_offsets(TopicPartition(self.topic.name, p), timeout=timeout_s)[1]
            for p in partitions
        }
        self._catch_up = {p: end for p, end in ends.items() if end > 0}
        self._partitions = partitions
        self._consumer.assign([TopicPartition(self.topic.name, p, OFFSET_BEGINNING) for p in partitions])
        self._thread.start()

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """Block until the records that existed at `start` are folded in; False on timeout."""
        return self._ready.wait(timeout_s)

    def sync(self, timeout_s: float = 5.0) -> bool:
        """Block until every record on the topic when called is folded in (its end offsets, asked of the
        broker now); False if the broker did not answer or the view did not get there within `timeout_s`.

        What a consumer calls before it decides on the view's word about something that happened before:
        a change published before the call is then known. The end offsets are asked with a client of their
        own (the view's consumer belongs to its thread)."""
        deadline = time.monotonic() + timeout_s
        if not self._partitions:
            return False  # not started
        with self._sync_lock:
            if self._offsets is None:
                self._offsets = Consumer(
                    {
                        "bootstrap.servers": self._bootstrap_servers,
                        **client_security(),
                        "group.id": f"{self.client_id}-ends-{uuid.uuid4().hex[:12]}",
                        "client.id": f"{self.client_id}-ends",
                        "enable.auto.commit": False,
                    }
                )
            try:
                ends = {
                    p: self._offsets.get_watermark_offsets(
                        TopicPartition(self.topic.name, p), timeout=max(0.1, deadline - time.monotonic())
                    )[1]
                    for p in self._partitions
                }
            except KafkaException as exc:
                log.warning("%s view: end offsets not known: %s", self.topic.name, exc)
                return False
        while not all(self._positions.get(p, 0) >= end for p, end in ends.items() if end > 0):
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.002)
        return True

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def age_s(self) -> float:
        """Seconds since the view last heard from the broker (a poll returned without error)."""
        return self._clock() - self._last_heard

    def healthy(self, max_age_s: float = 5.0) -> bool:
        """Ready, and heard from the broker within `max_age_s`: what a readiness check should require."""
        return self.ready and self.age_s <= max_age_s

    @property
    def positions(self) -> dict[int, int]:
        """Per partition followed, the offset after the last record folded in (0 before the first; empty
        before `start`): how far the view has read, which `services.common.lag` holds against the end."""
        return {p: self._positions.get(p, 0) for p in self._partitions}

    @property
    def records_folded(self) -> int:
        """Records the fold accepted (applied or superseded)."""
        return self._records

    def close(self) -> None:
        """Stop following and close the consumer."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()
        with self._sync_lock:
            if self._offsets is not None:
                self._offsets.close()
                self._offsets = None

    def _fold(self, raw: bytes | None) -> tuple[str, str | None]:
        """The outcome of folding the record value `raw` in (applied, superseded, refused, ...), and why it
        was refused (None if it was not: then it counts in `records_folded`)."""
        raise NotImplementedError

    def _fold_record(self, key: bytes | None, raw: bytes | None) -> tuple[str, str | None]:
        """`_fold` of a record's value; a view that needs the record's key too (to judge a tombstone, whose
        value is None) overrides this."""
        return self._fold(raw)

    def _run(self) -> None:
        if not self._catch_up:
            self._ready.set()
        while not self._stopping.is_set():
            try:
                messages = self._consumer.consume(500, self.poll_timeout_s)
            except KafkaException as exc:
                log.warning("%s view poll failed: %s", self.topic.name, exc)
                continue
            healthy = True
            for message in messages:
                error = message.error()
                if error is None:
                    self._take(message)
                    self._positions[message.partition()] = message.offset() + 1
                    if message.offset() + 1 >= self._catch_up.get(message.partition(), 0):
                        self._caught_up(message.partition())
                elif error.code() == KafkaError._PARTITION_EOF:
                    partition = message.partition()
                    self._positions[partition] = max(self._positions.get(partition, 0), message.offset())
                    self._caught_up(partition)
                else:
                    healthy = False
                    log.warning("%s view: %s", self.topic.name, error)
            if healthy:
                self._last_heard = self._clock()

    def _caught_up(self, partition: int) -> None:
        if self._catch_up.pop(partition, None) is not None and not self._catch_up:
            self._ready.set()

    def _take(self, message: Message) -> None:
        """Fold one record in, or refuse it with the reason; never raises, so the thread goes on."""
        try:
            outcome, reason = self._fold_record(message.key(), message.value())
        except Exception as exc:  # a bug in the fold must not stop the records behind this one
            log.exception("%s view: folding the record at %s", self.topic.name, _where(message))
            outcome, reason = "failed", f"fold failed: {type(exc).__name__}: {exc}"
        self._records_metric.labels(self.client_id, outcome).inc()
        if reason is None:
            self._records += 1
            return
        log.warning("%s view: %s the record at %s: %.300s", self.topic.name, outcome, _where(message), reason)
        if self._dead_letter is None:
            return
        try:
            self._dead_letter(dlq_record_of(self.topic, message, reason, self.client_id))
        except Exception:  # the view's progress comes first; the record stays on its topic
            log.exception("%s view: could not dead-letter the record at %s", self.topic.name, _where(message))


def _where(message: Message) -> str:
    """Where a record is, for the logs: topic/partition@offset and its key."""
    return f"{message.topic()}/{message.partition()}@{message.offset()} (key {message.key()!r:.200})"
