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

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from prometheus_client import Counter, Gauge

from services.common import didkey, events, schemas, signing
from services.common.dead_letters import DeadLetter
from services.common.follower import TopicView
from services.common.topics import CONSENTS

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


class ConsentView(TopicView):
    """Follows ``city.consents.v1`` from the beginning, on a background thread (`TopicView`), and answers
    `allows` in O(1). A revocation reaches `allows` within about `age_s` plus the broker's delivery time.

    A record that is not a valid, correctly signed consent is refused (logged, counted), and so is one whose
    fold raises; with a `dead_letter`, each goes to ``city.consents.dlq.v1`` with the reason.
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
        self._book = ConsentBook()
        super().__init__(
            bootstrap_servers,
            CONSENTS,
            client_id=client_id,
            age_gauge=CONSENT_VIEW_AGE,
            records=CONSENT_RECORDS,
            poll_timeout_s=poll_timeout_s,
            clock=clock,
            dead_letter=dead_letter,
        )

    def allows(self, subject: str, category: str, grantee: str = CITY) -> bool:
        """True if `subject` currently grants `category` to `grantee` (as far as the view has read)."""
        return self._book.allows(subject, category, grantee)

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
        return ("applied" if applied else "superseded"), None
