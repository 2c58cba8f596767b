"""Consent to data sharing: the subject's signed consent object, its record on ``city.consents.v1``, and
`ConsentView`, the in-memory fold of that compacted topic that a pipeline asks before it uses a reading.

A consent object is signed by its subject (`signing.verify(obj, "subject")`)::

    {"subject": did:key, "category": "mobility", "grantee": "city" | did:key, "action": "grant" | "revoke",
     "purpose": "...", "until": RFC 3339 (optional), "issued_at": RFC 3339, "sig": ...}

The identity service checks it, stores it and publishes the record (the schema ``consents.v1.json``), which
carries the signed object so that any consumer can re-verify who consented to what. `ConsentView` does: a
record whose signed object does not match it is refused, and sent to ``city.consents.dlq.v1`` with the reason
when the view is given a `DeadLetter` (ingest's is a `dead_letters.DeadLetterProducer`).

The record key is ``<subject>/<category>`` for the grantee ``city`` and ``<subject>/<category>/<grantee>``
for any other grantee, so that log compaction keeps the latest state of every (subject, category, grantee).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import Counter, Gauge

from services.common import didkey, events, schemas, signing
from services.common.dead_letters import DeadLetter
from services.common.kafka import client_security, dlq_record_of
from services.common.topics import CONSENTS

log = logging.getLogger(__name__)

CITY = "city"
"""The grantee that stands for the city's own pipeline (ingest, rewards)."""

Status = Literal["granted", "revoked"]
_STATUS_OF_ACTION: dict[str, Status] = {"grant": "granted", "revoke": "revoked"}

CONSENT_VIEW_AGE = Gauge(
    "smartcity_consent_view_age_seconds",
    "Seconds since the consent view last heard from the broker (how stale its answers may be).",
    ["client"],
)
CONSENT_RECORDS = Counter(
    "smartcity_consent_records_total",
    "city.consents.v1 records folded by a consent view, by outcome: applied, superseded (signed before the "
    "change in force: a replay or an old copy), refused (not a valid consent signed by its subject), failed "
    "(a valid consent whose fold raised: a bug). Refused and failed records are dead-lettered.",
    ["client", "outcome"],
)


class ConsentError(ValueError):
    """A consent object or record is malformed, or its signature does not verify."""


class ConsentSignatureError(ConsentError):
    """A consent object is not signed by its subject."""


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC timestamp as an aware datetime; raises ValueError."""
    if not isinstance(text, str) or not text.endswith(("Z", "+00:00")):
        raise ValueError(f"{text!r} is not an RFC 3339 UTC timestamp")
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _time_of(obj: Mapping[str, Any], field: str) -> datetime:
    """`obj[field]` as a time; raises `ConsentError` naming it. The schemas' pattern lets through days that do
    not exist (``2026-99-99T99:99:99Z``): those are refused here, as ``impossible-date``."""
    try:
        return parse_time(obj[field])
    except ValueError as exc:
        raise ConsentError(f"impossible-date: {field} {obj[field]!r}: {exc}") from exc


@dataclass(frozen=True)
class ConsentChange:
    """A checked consent object: who grants (or revokes) which category to whom, and until when."""

    subject: str
    category: str
    grantee: str
    status: Status
    purpose: str
    until: datetime | None
    issued_at: datetime
    signed: Mapping[str, Any]

    @property
    def key(self) -> str:
        """The record key on ``city.consents.v1``."""
        return record_key(self.subject, self.category, self.grantee)

    def record(self, changed_at: datetime) -> dict[str, Any]:
        """The record value published to ``city.consents.v1``."""
        value: dict[str, Any] = {
            "subject": self.subject,
            "category": self.category,
            "grantee": self.grantee,
            "purpose": self.purpose,
            "status": self.status,
            "changed_at": events.rfc3339(changed_at),
            "consent": dict(self.signed),
        }
        if self.until is not None:
            value["until"] = events.rfc3339(self.until)
        return value


def record_key(subject: str, category: str, grantee: str = CITY) -> str:
    """``<subject>/<category>`` for the city, ``<subject>/<category>/<grantee>`` for anyone else."""
    return f"{subject}/{category}" if grantee == CITY else f"{subject}/{category}/{grantee}"


def check_consent(obj: Any) -> ConsentChange:
    """Check a signed consent object (shape and the subject's signature); raises `ConsentError`."""
    if not isinstance(obj, Mapping):
        raise ConsentError("a consent must be a JSON object")
    try:
        schemas.validate_definition("consent", obj)
    except schemas.SchemaError as exc:
        raise ConsentError(str(exc)) from exc
    grantee = obj["grantee"]
    if grantee != CITY and not didkey.is_did_key(grantee):
        raise ConsentError(f"grantee: must be {CITY!r} or a did:key, got {grantee!r}")
    until = _time_of(obj, "until") if "until" in obj else None
    issued_at = _time_of(obj, "issued_at")
    try:
        signing.verify(obj, "subject")
    except signing.SignatureError as exc:
        raise ConsentSignatureError(f"not signed by its subject: {exc}") from exc
    return ConsentChange(
        subject=obj["subject"],
        category=obj["category"],
        grantee=grantee,
        status=_STATUS_OF_ACTION[obj["action"]],
        purpose=obj.get("purpose", ""),
        until=until,
        issued_at=issued_at,
        signed=dict(obj),
    )


def check_record(value: Any) -> ConsentChange:
    """Check a ``city.consents.v1`` record: its schema, and that the signed object inside says the same."""
    try:
        schemas.validate(CONSENTS, value)
    except schemas.SchemaError as exc:
        raise ConsentError(f"schema: {exc}") from exc
    change = check_consent(value["consent"])
    _time_of(value, "changed_at")
    until = _time_of(value, "until") if "until" in value else None
    stated = (value["subject"], value["category"], value["grantee"], value["status"], until)
    if stated != (change.subject, change.category, change.grantee, change.status, change.until):
        raise ConsentError("the record does not say what its signed consent says")
    return change


class ConsentBook:
    """The consent in force per (subject, category, grantee): of the changes folded in, the one its subject
    signed last (``issued_at``), whatever order they arrived in. Pure.

    Arrival order cannot decide: a compacted topic may hold an old record beside a new one, and anyone who
    kept a copy of an earlier grant can publish it again after its revocation. Two changes signed at the
    same instant are ordered revocation first, then by their object ids, so every view picks the same one.
    """

    def __init__(self) -> None:
        # Per key, the order of the change in force (its time, revocation after grant), what `allows` needs
        # of it (None = not granted, else granted until a time, `_FOREVER` without end) and its signed object.
        self._latest: dict[
            tuple[str, str, str], tuple[tuple[datetime, int], datetime | None, Mapping[str, Any]]
        ] = {}

    def apply(self, change: ConsentChange) -> bool:
        """Fold one change in; True if it is now the one in force (it was signed after the one before)."""
        key = (change.subject, change.category, change.grantee)
        order = (change.issued_at, 0 if change.status == "granted" else 1)
        current = self._latest.get(key)
        # Only a tie on time and kind needs the object ids: canonicalising every change would cost more than
        # the rest of the fold.
        if current is not None and (
            current[0] > order
            or (current[0] == order and signing.object_id(current[2]) >= signing.object_id(change.signed))
        ):
            return False
        granted = (change.until or _FOREVER) if change.status == "granted" else None
        self._latest[key] = (order, granted, change.signed)
        return True

    def allows(self, subject: str, category: str, grantee: str = CITY, now: datetime | None = None) -> bool:
        """True if `subject` has granted `category` to `grantee` and the grant has not expired."""
        current = self._latest.get((subject, category, grantee))
        if current is None or current[1] is None:
            return False
        return (now or datetime.now(UTC)) < current[1]

    def __len__(self) -> int:
        return sum(1 for _, granted, _ in self._latest.values() if granted is not None)


_FOREVER = datetime.max.replace(tzinfo=UTC)


class ConsentView:
    """Follows ``city.consents.v1`` from the beginning, on a background thread, and answers `allows` in O(1).

    Every instance reads every partition itself (assigned, not subscribed: no consumer group, no committed
    offsets), because every instance must know every consent. Compaction may or may not have run, so it
    folds every record to the latest per key. `age_s` says how long ago it last heard from the broker: a
    revocation reaches `allows` within about `age_s` plus the broker's delivery time.

    A record that is not a valid, correctly signed consent is refused (logged, counted), and so is one whose
    fold raises (a bug must not stop the revocations behind it); with a `dead_letter`, each goes to
    ``city.consents.dlq.v1`` with the reason. Since every instance reads every record, and reads them all
    again when it restarts, several entries may stand for one record: an entry names the view (`consumer`,
    its `client_id`) and the record's partition and offset, which is how duplicates are recognised.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str = "consent-view",
        poll_timeout_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
        dead_letter: DeadLetter | None = None,
    ) -> None:
        """`dead_letter` receives the DLQ entry of every refused record; it stays the caller's to close."""
        self.client_id = client_id
        self.poll_timeout_s = poll_timeout_s
        self._clock = clock
        self._dead_letter = dead_letter
        self._book = ConsentBook()
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
                "fetch.wait.max.ms": 100,  # revocations must show up quickly, not wait for a full fetch
                "isolation.level": "read_uncommitted",
            }
        )
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._last_heard = clock()
        self._records = 0
        self._catch_up: dict[int, int] = {}
        self._thread = threading.Thread(target=self._run, name=f"{client_id}-consents", daemon=True)
        CONSENT_VIEW_AGE.labels(client_id).set_function(lambda: self.age_s)

    def start(self, timeout_s: float = 10.0) -> None:
        """Assign every partition of the topic at its beginning and start following it."""
        metadata = self._consumer.list_topics(CONSENTS.name, timeout=timeout_s)
        partitions = sorted(metadata.topics[CONSENTS.name].partitions)
        if not partitions:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, f"no topic {CONSENTS.name}"))
        # What "caught up" means: every record that existed when we started has been folded in.
        ends = {
            p: self._consumer.get_watermark_offsets(TopicPartition(CONSENTS.name, p), timeout=timeout_s)[1]
            for p in partitions
        }
        self._catch_up = {p: end for p, end in ends.items() if end > 0}
        self._consumer.assign([TopicPartition(CONSENTS.name, p, OFFSET_BEGINNING) for p in partitions])
        self._thread.start()

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        """Block until the records that existed at `start` are folded in; False on timeout."""
        return self._ready.wait(timeout_s)

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
    def records_folded(self) -> int:
        return self._records

    def allows(self, subject: str, category: str, grantee: str = CITY) -> bool:
        """True if `subject` currently grants `category` to `grantee` (as far as the view has read)."""
        return self._book.allows(subject, category, grantee)

    def close(self) -> None:
        """Stop following and close the consumer."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._consumer.close()

    def _run(self) -> None:
        if not self._catch_up:
            self._ready.set()
        while not self._stopping.is_set():
            try:
                messages = self._consumer.consume(500, self.poll_timeout_s)
            except KafkaException as exc:
                log.warning("consent view poll failed: %s", exc)
                continue
            healthy = True
            for message in messages:
                error = message.error()
                if error is None:
                    self._take(message)
                    if message.offset() + 1 >= self._catch_up.get(message.partition(), 0):
                        self._caught_up(message.partition())
                elif error.code() == KafkaError._PARTITION_EOF:
                    self._caught_up(message.partition())
                else:
                    healthy = False
                    log.warning("consent view: %s", error)
            if healthy:
                self._last_heard = self._clock()

    def _caught_up(self, partition: int) -> None:
        if self._catch_up.pop(partition, None) is not None and not self._catch_up:
            self._ready.set()

    def _take(self, message: Message) -> None:
        """Fold one record in, or refuse it with the reason; never raises, so the thread goes on."""
        try:
            outcome, reason = self._fold(message.value())
        except Exception as exc:  # a bug in the fold must not stop the revocations behind this record
            log.exception("consent view: folding the record at %s", _where(message))
            outcome, reason = "failed", f"fold failed: {type(exc).__name__}: {exc}"
        CONSENT_RECORDS.labels(self.client_id, outcome).inc()
        if reason is None:
            return
        log.warning("consent view: %s the record at %s: %.300s", outcome, _where(message), reason)
        if self._dead_letter is None:
            return
        try:
            self._dead_letter(dlq_record_of(CONSENTS, message, reason, self.client_id))
        except Exception:  # the view's progress comes first; the record stays on its topic
            log.exception("consent view: could not dead-letter the record at %s", _where(message))

    def _fold(self, raw: bytes | None) -> tuple[str, str | None]:
        """The outcome of folding `raw` in, and why it was refused (None if it was not)."""
        try:
            value = events.decode_json(raw)
        except ValueError as exc:
            return "refused", f"malformed JSON: {exc}"
        try:
            change = check_record(value)
        except ConsentError as exc:
            return "refused", str(exc)
        applied = self._book.apply(change)
        self._records += 1
        return ("applied" if applied else "superseded"), None


def _where(message: Message) -> str:
    """Where a record is, for the logs: topic/partition@offset and its key."""
    return f"{message.topic()}/{message.partition()}@{message.offset()} (key {message.key()!r:.200})"
