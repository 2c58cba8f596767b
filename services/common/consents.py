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

Consent is a fact of the time: what decides a reading is the consent in force at the reading's own time
(``ts``), from the signed history (`ConsentBook.at`), not the one in force when the reading happens to be
looked at. A reading taken after a revocation's ``issued_at`` is refused however long it waited; one taken
while a grant was in force stays allowed after a later revocation.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
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


@dataclass(frozen=True)
class InForce:
    """The consent in force for one (subject, category, grantee) at one time, as `ConsentBook.at` answers it.

    `status`: ``granted``; ``revoked``; ``expired`` (a grant whose ``until`` had passed); ``none`` (no change
    signed at or before that time); ``unknown`` (the time is older than the history the book keeps). Only
    ``granted`` allows. `change` is the change in force (None for ``none`` and ``unknown``)."""

    status: str
    change: ConsentChange | None = None

    @property
    def allows(self) -> bool:
        return self.status == "granted"

    @property
    def consent_id(self) -> str | None:
        """The id of the signed consent object in force (`signing.object_id`), or None."""
        return None if self.change is None else _object_id(self.change)

    def as_json(self, category: str) -> dict[str, Any]:
        """What a decision records of the consent it was decided on (``city.reward-decisions.v1``)."""
        out: dict[str, Any] = {"category": category, "status": self.status}
        if self.change is not None:
            out["issued_at"] = events.rfc3339(self.change.issued_at)
            out["consent_id"] = self.consent_id
        return out


def _object_id(change: ConsentChange) -> str:
    # Computed once per change (canonicalising costs more than the rest of a fold), kept on the object.
    cached = change.__dict__.get("_object_id")
    if cached is None:
        cached = signing.object_id(change.signed)
        object.__setattr__(change, "_object_id", cached)
    return cached


DEFAULT_HISTORY_S = 3 * 86400.0
"""How far back, per (subject, category, grantee), a book keeps the changes before its latest: beyond every
reading a pipeline still takes (ingest's ``INGEST_MAX_AGE_S``, a day; a policy's ``late_s``, at most two)."""


class ConsentBook:
    """The consent changes per (subject, category, grantee), ordered by the time their subject signed them
    (``issued_at``), whatever order they arrived in; it answers which one was in force at any time. Pure.

    Arrival order cannot decide: a compacted topic may hold an old record beside a new one, and anyone who
    kept a copy of an earlier grant can publish it again after its revocation. The change in force at time
    ``t`` is the last one signed at or before ``t``; a grant ends at its ``until``. Two changes signed at the
    same instant are ordered grant first, then revocation, then by their object ids, so every view picks the
    same one (a revocation wins a tie). The same object folded twice (however its signature is written)
    changes nothing.

    History is bounded: per key, the changes signed within `history_s` before its latest are kept, and the
    one in force when that window begins; a question about an earlier time is answered ``unknown``, which
    does not allow.
    """

    def __init__(self, history_s: float = DEFAULT_HISTORY_S) -> None:
        self.history_s = history_s
        # Per key, its changes sorted by `_order`, and the time before which its history was dropped (None: it
        # holds every change it was given).
        self._changes: dict[tuple[str, str, str], list[ConsentChange]] = {}
        self._pruned: dict[tuple[str, str, str], datetime] = {}

    def apply(self, change: ConsentChange) -> bool:
        """Fold one change in; True if it is now the latest of its key (the one in force from now on), False
        if it was signed before the latest (an old copy, a replay: kept as history if recent enough)."""
        key = (change.subject, change.category, change.grantee)
        history = self._changes.setdefault(key, [])
        order = _order(change)
        index = bisect.bisect_left(history, order, key=_order)
        # Only changes of the same instant and kind need their object ids compared.
        while index < len(history) and _order(history[index]) == order:
            if _object_id(history[index]) == _object_id(change):
                return False  # the same signed object again
            if _object_id(history[index]) > _object_id(change):
                break
            index += 1
        pruned = self._pruned.get(key)
        if pruned is not None and change.issued_at < pruned and index == 0:
            return False  # older than the history kept: it was not in force at any time still asked about
        history.insert(index, change)
        self._prune(key, history)
        return index == len(history) - 1

    def at(self, subject: str, category: str, when: datetime, grantee: str = CITY) -> InForce:
        """The consent `subject` gave `grantee` for `category` in force at `when`."""
        key = (subject, category, grantee)
        history = self._changes.get(key)
        # The last change signed at or before `when`: one signed later is not in force yet.
        index = 0 if not history else bisect.bisect_right(history, when, key=_issued_at)
        if index == 0:
            pruned = self._pruned.get(key)
            return InForce("unknown" if pruned is not None and when < pruned else "none")
        change = history[index - 1]
        if change.status == "revoked":
            return InForce("revoked", change)
        if change.until is not None and when >= change.until:
            return InForce("expired", change)
        return InForce("granted", change)

    def allows_at(self, subject: str, category: str, when: datetime, grantee: str = CITY) -> bool:
        """True if `subject` granted `category` to `grantee` in a change in force at `when`."""
        return self.at(subject, category, when, grantee).allows

    def allows(self, subject: str, category: str, grantee: str = CITY, now: datetime | None = None) -> bool:
        """True if `subject` grants `category` to `grantee` now (or at `now`)."""
        return self.allows_at(subject, category, now or datetime.now(UTC), grantee)

    def _prune(self, key: tuple[str, str, str], history: list[ConsentChange]) -> None:
        """Drop the changes no longer in force at any time within `history_s` before the latest."""
        horizon = history[-1].issued_at - timedelta(seconds=self.history_s)
        # Keep the last change signed at or before the horizon (in force when the window begins).
        drop = bisect.bisect_right(history, horizon, key=_issued_at) - 1
        if drop > 0:
            self._pruned[key] = history[drop].issued_at
            del history[:drop]

    def __len__(self) -> int:
        """Keys whose latest change is a grant."""
        return sum(1 for history in self._changes.values() if history and history[-1].status == "granted")


def _order(change: ConsentChange) -> tuple[datetime, int]:
    return change.issued_at, 0 if change.status == "granted" else 1


def _issued_at(change: ConsentChange) -> datetime:
    return change.issued_at


class ConsentView(TopicView):
    """Follows ``city.consents.v1`` from the beginning, on a background thread (`TopicView`), and answers
    `allows` (now) and `allows_at` / `at` (at a reading's time) in O(log n) of the key's history. A revocation
    reaches them within about `age_s` plus the broker's delivery time; `sync` waits until every change on the
    topic when it is called is folded in.

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
        history_s: float = DEFAULT_HISTORY_S,
    ) -> None:
        """`dead_letter` receives the DLQ entry of every refused record; it stays the caller's to close.
        `history_s`: how far back the consent in force at a time is known (`ConsentBook`)."""
        self._book = ConsentBook(history_s)
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

    def allows_at(self, subject: str, category: str, when: datetime, grantee: str = CITY) -> bool:
        """True if the consent `subject` gave `grantee` for `category` in force at `when` (a reading's own
        time) allows it, as far as the view has read."""
        return self._book.allows_at(subject, category, when, grantee)

    def at(self, subject: str, category: str, when: datetime, grantee: str = CITY) -> InForce:
        """The consent in force at `when` (`ConsentBook.at`), as far as the view has read."""
        return self._book.at(subject, category, when, grantee)

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
