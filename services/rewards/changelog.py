"""Rebuilding the engine's state of readings partitions from ``city.reward-decisions.v1``, the worker's
changelog, after their snapshots (`services.rewards.snapshots`) where there are (blocking I/O).

Every decision is published before the rewards it implies, so the decisions on the topic are a superset of
the decisions whose effects exist. Applying them again (in offset order per partition) gives back
the caps, stuck-sensor and burst memory, the zone windows and the recent decisions by reading id; the
readings the dead worker had decided but not committed are then recognised as decided, and get the same
rewards again, which the ledger settles once. A record carries the decisions on one readings record, a line
each, attested by the rewards oracle (`processor.decisions_record`): the state is rebuilt only from what the
worker's own key attested, since a forged decision would change caps and statistics. A record that is not
that (unattested, altered, another key's), or a line that cannot be read back (not JSON, the wrong shape), is
skipped and, given a `dead_letter`, sent to ``city.reward-decisions.dlq.v1`` with the reason (by every rebuild
that meets it: an entry names the record's partition and offset); the other lines of its record are folded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from services.common import attestation
from services.common.dead_letters import DeadLetter, dlq_record_of
from services.common.decisions import UnreadableDecisionError, read_decision
from services.common.kafka import FETCH_WAIT_MAX_MS, client_security
from services.common.topics import REWARD_DECISIONS
from services.rewards.engine import Decision, State
from services.rewards.snapshots import Snapshot

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0


def lines_of(message: Message, oracles: Collection[str]) -> list[bytes]:
    """The decisions (JCS lines) of a decisions record attested by one of `oracles` (did:keys); raises
    `attestation.AttestationError` for a record none of them attested."""
    header = next((v for k, v in message.headers() or [] if k == attestation.HEADER), None)
    return attestation.lines_by(header, REWARD_DECISIONS.name, message.value() or b"", oracles)


def _decision_of(raw: bytes, app_id: str, partition: int) -> tuple[Decision, int] | None:
    """The decision the line `raw` holds and the offset of the reading it decides, if app `app_id` made it on
    readings partition `partition` (None for another app's); raises `UnreadableDecisionError`."""
    value, _ = read_decision(raw)
    if value["decided_by"] != app_id or value["partition"] != partition:
        return None
    return Decision.from_json(value), value["offset"]


def rebuild_partitions(
    bootstrap_servers: str,
    *,
    app_id: str,
    oracles: Collection[str],
    partitions: list[int],
    since: float,
    now: float,
    recent_limit: int,
    snapshots: Mapping[int, Snapshot] | None = None,
    recent_s: float = 30.0,
    dead_letter: DeadLetter | None = None,
) -> dict[int, Rebuilt]:
    """The state of each readings partition of `partitions`: its snapshot (`services.rewards.snapshots`) with
    the decisions after it applied (and those of the `recent_s` before it known by reading id), or, without
    one, every decision of app `app_id` published since `since` (epoch seconds, broker time) applied, from the
    records the worker's keys `oracles` attested (its key, and those before a rotation). Decisions of partition p are on partition p of the decisions
    topic (keyed and partitioned as the readings), and name it; other apps' decisions (another deployment, a
    canary, a test) are not this app's history.

    A decision on a readings offset at or below one already applied is only remembered: a genuine decisions
    record produced again later (a replay) must not count twice. A snapshot captured before `since` is not
    used (a replayed old one would leave out what was decided after it)."""
    snapshots = {p: s for p, s in (snapshots or {}).items() if s.captured_at >= since}
    starts = {p: snapshots[p].captured_at - recent_s if p in snapshots else since for p in partitions}
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            **client_security(),
            "group.id": "smartcity-rewards-rebuild",  # never joined nor committed: partitions are assigned
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # how the end of each partition is known
            "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        }
    )
    try:
        messages = _read(consumer, starts)
    finally:
        consumer.close()
    rebuilt = {
        p: Rebuilt(snapshots[p].state, snapshots[p].offset, 0)
        if p in snapshots
        else Rebuilt(State(recent_limit=recent_limit), -1, 0)
        for p in partitions
    }
    for message in messages:
        target = rebuilt[message.partition()]
        try:
            lines = lines_of(message, oracles)
        except attestation.AttestationError as exc:
            _skip(message, str(exc), app_id, dead_letter)
            continue
        target.records += len(lines)
        covered, applied = target.offset, target.offset  # the lines of a record share their readings offset
        for index, line in enumerate(lines):
            try:
                decision = _decision_of(line, app_id, message.partition())
                if decision is None:
                    continue
                decision, offset = decision
                if offset <= covered:
                    target.state.remember(decision)  # applied already (the snapshot, or an earlier record)
                else:
                    target.state.apply(decision, now)
                    applied = max(applied, offset)
            except (UnreadableDecisionError, ValueError, KeyError, TypeError) as exc:
                reason = (
                    str(exc)
                    if isinstance(exc, UnreadableDecisionError)
                    else f"fold: {type(exc).__name__}: {exc}"
                )
                _skip(message, f"line {index}: {reason}" if len(lines) > 1 else reason, app_id, dead_letter)
        target.offset = applied
    for partition, done in sorted(rebuilt.items()):
        log.info(
            "rebuilt the rewards state of %s partition %d from %s and %d decisions",
            app_id,
            partition,
            "its snapshot" if partition in snapshots else "the horizon",
            done.records,
        )
    return rebuilt


def _skip(message: Message, reason: str, app_id: str, dead_letter: DeadLetter | None) -> None:
    log.warning(
        "skipping %s[%d]@%d: %s", REWARD_DECISIONS.name, message.partition(), message.offset(), reason
    )
    if dead_letter is not None:
        dead_letter(dlq_record_of(REWARD_DECISIONS, message, reason, app_id))


@dataclass
class Rebuilt:
    """A partition's rebuilt state, the readings offset it covers (its snapshot's, or the last decision
    applied; -1: none), and how many decisions (lines of the records it attested) were read to rebuild it."""

    state: State
    offset: int
    records: int


def _read(consumer: Consumer, starts: Mapping[int, float]) -> list[Message]:
    """Every record of the decisions topic's partitions `starts` from the first one stamped at or after their
    start (epoch seconds) to the end, each partition in offset order.

    The end is where the consumer reports end-of-partition, not the listed high watermark: the embedded
    broker lists the start of a partition's last batch plus one as its end, which would leave that
    batch out.
    """
    name = REWARD_DECISIONS.name
    if not starts:
        return []
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(name, p, int(since * 1000)) for p, since in starts.items()], timeout=TIMEOUT_S
        )
        positions = {tp.partition: tp.offset for tp in found if tp.offset >= 0}  # -1: nothing that recent
    except KafkaException as exc:
        log.warning("no offsets by time on %s (%s): reading it from the beginning", name, exc)
        positions = dict.fromkeys(starts, OFFSET_BEGINNING)
    consumer.assign([TopicPartition(name, p, offset) for p, offset in positions.items()])
    pending = set(positions)
    messages: list[Message] = []
    deadline = time.monotonic() + TIMEOUT_S
    while pending:
        # consume() returns when it has the count or at the timeout: short polls, one overall deadline.
        batch = consumer.consume(10000, 0.1)
        if batch:
            deadline = time.monotonic() + TIMEOUT_S
        elif time.monotonic() > deadline:
            raise TimeoutError(
                f"{name}: partitions {sorted(pending)} did not reach their end in {TIMEOUT_S}s"
            )
        for message in batch:
            error = message.error()
            if error is None:
                messages.append(message)
            elif error.code() == KafkaError._PARTITION_EOF:
                pending.discard(message.partition())
            else:
                log.warning("reading %s: %s", name, error)
    return messages
