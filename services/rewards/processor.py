"""From one ``city.readings.v1`` record to the records it produces, independent of Faust.

A verified reading not decided before is decided under the current policy (`engine.decide`), the decision is
folded into the state, and it becomes one ``city.reward-decisions.v1`` record (same key and partition as the
reading) and one ``city.rewards.v1`` record per payment (keyed by wallet, CloudEvents headers, JCS-encoded
value). A reading decided before (a redelivery) yields the rewards of its earlier decision again, identical,
and no new decision. A record that cannot be verified becomes one ``city.readings.dlq.v1`` record naming
the reason. Apart from the DLQ record's ``failed_at``, the output depends on nothing but the input, the
policy and the decisions before it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common import attestation
from services.common.events import cloudevent_headers
from services.common.ids import reward_id
from services.common.kafka import OutgoingRecord, dlq_record
from services.common.policy import CURRENCY, Policy
from services.common.topics import READINGS, REWARD_DECISIONS, REWARDS, ZONE_STATS
from services.rewards.engine import Decision, State, ZoneWindow, decide
from services.rewards.readings import AcceptedReading, InvalidReading, parse

log = logging.getLogger(__name__)

REWARD_EVENT_TYPE = "city.reward.v1"
DECISION_EVENT_TYPE = "city.reward-decision.v1"
ZONE_STATS_EVENT_TYPE = "city.zone-stats.v1"
EVENT_SOURCE = "smartcity/rewards"
INTERNAL_ERROR = "internal-error"

Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


@dataclass(frozen=True)
class Outcome:
    """What one readings record turned into.

    `records` go out first (the decision, or the DLQ record), `rewards` only once the broker acknowledged
    them, so that no reward exists whose decision a restarted worker could not read back.
    """

    records: tuple[OutgoingRecord, ...]
    rewards: tuple[dict[str, Any], ...] = ()
    decision: Decision | None = None
    replayed: bool = False
    rejection: str | None = None
    received_at: str | None = None

    @property
    def reward_records(self) -> list[OutgoingRecord]:
        return [reward_record(r) for r in self.rewards]


def handle_reading(
    raw: bytes | None,
    *,
    key: bytes | None,
    partition: int,
    offset: int,
    headers: Headers,
    policy: Policy,
    state: State,
    consumer: str,
    attestors: Collection[str],
    now: float = 0.0,
    parsed: AcceptedReading | InvalidReading | None = None,
) -> Outcome:
    """Decide one readings record (changing `state`), or dead-letter it with the reason.

    `parsed` is what `readings.parse` made of `raw`, when that was done already (in a worker process);
    `attestors` are the keys holding the ingest-attestor role.
    """
    try:
        if isinstance(parsed, InvalidReading):
            raise parsed
        reading = (
            parsed if parsed is not None else parse(raw, header_value(headers, attestation.HEADER), attestors)
        )
        earlier = state.recent.get(reading.reading_id)
        if earlier is not None:
            rewards = tuple(
                reward(reading, rule, amount, earlier.policy_version, earlier.policy_hash)
                for rule, amount in earlier.payments
            )
            return Outcome(records=(), rewards=rewards, decision=earlier, replayed=True)
        decision = decide(reading, policy, state)
    except InvalidReading as exc:
        reason, detail = exc.reason, str(exc)
    except Exception as exc:
        # A bug must not stall the partition: the record goes to the DLQ (to be replayed once fixed).
        log.exception("unexpected error on %s[%d]@%d", READINGS.name, partition, offset)
        reason, detail = INTERNAL_ERROR, f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"
    else:
        state.apply(decision, now)
        rewards = tuple(
            reward(reading, rule, amount, decision.policy_version, decision.policy_hash)
            for rule, amount in decision.payments
        )
        return Outcome(
            records=(decision_record(decision, partition, offset, consumer),),
            rewards=rewards,
            decision=decision,
            received_at=reading.received_at,
        )
    dead = dlq_record(
        READINGS,
        key=key,
        raw=raw,
        partition=partition,
        offset=offset,
        reason=detail,
        consumer=consumer,
        headers=_header_pairs(headers),
    )
    return Outcome(records=(dead,), rejection=reason)


def reward(
    reading: AcceptedReading, rule: str, amount: int, policy_version: str, policy_hash: str
) -> dict[str, Any]:
    """The reward object (schemas/rewards.v1.json) of `rule` paying `amount` for `reading` to its owner,
    under the policy of `policy_version` and `policy_hash`."""
    evidence: dict[str, Any] = {
        "reading": reading.reading,
        "registration": reading.registration,
        "received_at": reading.received_at,
        "attestation": dict(reading.attestation),
    }
    if reading.person is not None:  # named by the envelope ingest attested: the ledger rebuilds it
        evidence["person"] = reading.person
    return {
        "reward_id": reward_id(reading.reading_id, rule),
        "wallet": reading.owner,
        "amount": amount,
        "currency": CURRENCY,
        "rule": rule,
        "policy_version": policy_version,
        "policy_hash": policy_hash,
        "reading_id": reading.reading_id,
        "earned_at": reading.ts,
        "evidence": evidence,
    }


def decision_record(decision: Decision, partition: int, offset: int, decided_by: str) -> OutgoingRecord:
    """The ``city.reward-decisions.v1`` record of a decision by app `decided_by`: keyed by device, a
    CloudEvent whose id is the reading id and whose time is the reading's."""
    return OutgoingRecord(
        topic=REWARD_DECISIONS,
        key=decision.device_id,
        value={**decision.as_json(partition, offset), "decided_by": decided_by},
        headers=cloudevent_headers(DECISION_EVENT_TYPE, EVENT_SOURCE, decision.reading_id, decision.ts),
    )


def reward_record(reward: dict[str, Any]) -> OutgoingRecord:
    """The ``city.rewards.v1`` record of a reward: keyed by wallet, a CloudEvent whose id is the reward id.

    ``ce_time`` is when the reward was earned (not when it was sent), so a redelivery is identical.
    """
    return OutgoingRecord(
        topic=REWARDS,
        key=reward["wallet"],
        value=reward,
        headers=cloudevent_headers(REWARD_EVENT_TYPE, EVENT_SOURCE, reward["reward_id"], reward["earned_at"]),
    )


def zone_stats_record(window: ZoneWindow) -> OutgoingRecord:
    """The ``city.zone-stats.v1`` record of a window; the event id names the zone, kind and window."""
    summary = window.summary()
    event_id = f"{window.zone}/{window.kind}/{summary['window_start']}"
    return OutgoingRecord(
        topic=ZONE_STATS,
        key=window.zone,
        value=summary,
        headers=cloudevent_headers(ZONE_STATS_EVENT_TYPE, EVENT_SOURCE, event_id, summary["window_end"]),
    )


def header_value(headers: Headers, name: str) -> bytes | None:
    """The value of header `name` (the last one, as Kafka clients read headers), or None."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    found = None
    for key, value in pairs:
        if key == name:
            found = value
    return found


def _header_pairs(headers: Headers) -> list[tuple[str, bytes]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    return [(k, v or b"") for k, v in pairs]
