"""Rebuilding the engine's state from ``city.reward-decisions.v1``, the worker's changelog (blocking I/O).

Every decision is published before the rewards it implies, so the decisions on the topic are a superset of
the decisions whose effects exist. Applying them again (in the order the broker stamped them) gives back
the caps, stuck-sensor and burst memory, the zone windows and the recent decisions by reading id; the
readings the dead worker had decided but not committed are then recognised as decided, and get the same
rewards again, which the ledger settles once. A decision that cannot be read back (not JSON, the wrong shape)
is skipped and, given a `dead_letter`, sent to ``city.reward-decisions.dlq.v1`` with the reason (by every
rebuild that meets it: an entry names the record's partition and offset).
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from services.common import schemas
from services.common.dead_letters import DeadLetter
from services.common.events import decode_json
from services.common.kafka import client_security, dlq_record_of
from services.common.topics import REWARD_DECISIONS
from services.rewards.engine import Decision, State, epoch

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0


class UnreadableDecisionError(ValueError):
    """A decisions record that is not a decision: the message says why (the DLQ reason)."""


def _decision_of(raw: bytes | None, app_id: str) -> Decision | None:
    """The decision `raw` holds if app `app_id` made it (None for another app's); raises
    `UnreadableDecisionError`."""
    try:
        value = decode_json(raw)
    except ValueError as exc:
        raise UnreadableDecisionError(f"malformed JSON: {exc}") from exc
    try:
        schemas.validate(REWARD_DECISIONS, value)
    except schemas.SchemaError as exc:
        raise UnreadableDecisionError(f"schema: {exc}") from exc
    if value["decided_by"] != app_id:
        return None
    try:  # the schema's pattern lets through days that do not exist
        epoch(value["ts"])
    except ValueError as exc:
        raise UnreadableDecisionError(f"impossible-date: ts {value['ts']!r}: {exc}") from exc
    return Decision.from_json(value)


def rebuild_state(
    bootstrap_servers: str,
    *,
    app_id: str,
    since: float,
    now: float,
    recent_limit: int,
    dead_letter: DeadLetter | None = None,
) -> State:
    """A state with every decision of app `app_id` published since `since` (epoch seconds, broker time)
    applied. Other apps' decisions (another deployment, a canary, a test) are not this app's history."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            **client_security(),
            "group.id": "smartcity-rewards-rebuild",  # never joined nor committed: partitions are assigned
            "enable.auto.commit": False,
            "enable.partition.eof": True,  # how the end of each partition is known
        }
    )
    try:
        messages = _read_all(consumer, since)
    finally:
        consumer.close()
    messages.sort(key=lambda m: (m.timestamp()[1], m.partition(), m.offset()))
    state = State(recent_limit=recent_limit)
    applied = 0
    for message in messages:
        try:
            decision = _decision_of(message.value(), app_id)
            if decision is not None:
                state.apply(decision, now)
                applied += 1
        except (UnreadableDecisionError, ValueError, KeyError, TypeError) as exc:
            reason = (
                str(exc) if isinstance(exc, UnreadableDecisionError) else f"fold: {type(exc).__name__}: {exc}"
            )
            log.warning(
                "skipping %s[%d]@%d: %s", REWARD_DECISIONS.name, message.partition(), message.offset(), reason
            )
            if dead_letter is not None:
                dead_letter(dlq_record_of(REWARD_DECISIONS, message, reason, app_id))
    log.info("rebuilt the rewards state of %s from %d decisions", app_id, applied)
    return state


def _read_all(consumer: Consumer, since: float) -> list[Message]:
    """Every record of the decisions topic from the first one stamped at or after `since` to the end.

    The end is where the consumer reports end-of-partition, not the listed high watermark: the embedded
    broker lists the start of a partition's last batch plus one as its end, which would leave that
    batch out.
    """
    name = REWARD_DECISIONS.name
    metadata = consumer.list_topics(name, timeout=TIMEOUT_S).topics[name]
    partitions = sorted(metadata.partitions)
    try:
        found = consumer.offsets_for_times(
            [TopicPartition(name, p, int(since * 1000)) for p in partitions], timeout=TIMEOUT_S
        )
        starts = {tp.partition: tp.offset for tp in found if tp.offset >= 0}  # -1: nothing that recent
    except KafkaException as exc:
        log.warning("no offsets by time on %s (%s): reading it from the beginning", name, exc)
        starts = dict.fromkeys(partitions, OFFSET_BEGINNING)
    consumer.assign([TopicPartition(name, p, offset) for p, offset in starts.items()])
    pending = set(starts)
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
