"""From one ``city.readings.v1`` record to the records it produces, independent of Faust.

An accepted reading becomes one ``city.rewards.v1`` record per reward (keyed by wallet, CloudEvents
headers, JCS-encoded value); a record that cannot be rewarded becomes one ``city.readings.dlq.v1`` record
naming the reason. Apart from the DLQ record's ``failed_at``, the output depends on nothing but the input
and the policy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common import signing
from services.common.events import cloudevent_headers
from services.common.kafka import OutgoingRecord, dlq_record
from services.common.topics import READINGS, REWARDS
from services.rewards.policy import Policy
from services.rewards.readings import InvalidReading, parse

log = logging.getLogger(__name__)

REWARD_EVENT_TYPE = "city.reward.v1"
EVENT_SOURCE = "smartcity/rewards"
INTERNAL_ERROR = "internal-error"

Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None


@dataclass(frozen=True)
class Outcome:
    """What one readings record turned into: its outgoing records, the rewards, or a rejection reason."""

    records: tuple[OutgoingRecord, ...]
    rewards: tuple[dict[str, Any], ...] = ()
    rejection: str | None = None


def handle_reading(
    raw: bytes | None,
    *,
    key: bytes | None,
    partition: int,
    offset: int,
    headers: Headers,
    policy: Policy,
    consumer: str,
) -> Outcome:
    """The records one readings record produces: its rewards, or a DLQ record with the reason."""
    try:
        rewards = policy.rewards(parse(raw))
    except InvalidReading as exc:
        reason, detail = exc.reason, str(exc)
    except Exception as exc:
        # A bug must not stall the partition: the record goes to the DLQ (to be replayed once fixed).
        log.exception("unexpected error on %s[%d]@%d", READINGS.name, partition, offset)
        reason, detail = INTERNAL_ERROR, f"{INTERNAL_ERROR}: {type(exc).__name__}: {exc}"
    else:
        return Outcome(records=tuple(reward_record(r) for r in rewards), rewards=tuple(rewards))
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


def encode_value(record: OutgoingRecord) -> bytes:
    """The value bytes of an outgoing record: RFC 8785 (JCS), so equal values give equal bytes."""
    return signing.canonical_bytes(record.value)


def _header_pairs(headers: Headers) -> list[tuple[str, bytes]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers or []
    return [(k, v or b"") for k, v in pairs]
