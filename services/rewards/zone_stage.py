"""The zone stage's agent: ``city.zone-partials.v1`` (keyed by zone) in, ``city.zone-stats.v1`` out.

The sums are `services.rewards.zones.ZoneStage`'s; this wires it to Faust. A share's record is acknowledged
only once its window is published, so a worker that dies holding a window's shares gets them all again; a
marker or a late share is acknowledged at once. A record that is not a partial or a marker attested by the
workers' rewards-oracle key (a forged share would move the published statistics) goes to
``city.zone-partials.dlq.v1`` with the reason, and the records beside it are summed. A genuine record older
than what the stage holds from its readings partition is left out and counted (not dead-lettered: a rebalance
redelivers such records as a matter of course).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from prometheus_client import Counter

from services.common import attestation, schemas
from services.common.dead_letters import dlq_record
from services.common.events import decode_json
from services.common.kafka import OutgoingRecord, partition_of
from services.common.metrics import DLQ_RECORDS
from services.common.topics import READINGS, ZONE_PARTIALS
from services.rewards.processor import header_value
from services.rewards.settings import RewardsSettings
from services.rewards.zones import ZoneStage, is_marker, zone_stats_record

log = logging.getLogger(__name__)

ZONE_WINDOWS_PUBLISHED = Counter(
    "smartcity_rewards_zone_windows_published_total",
    "Zone windows published on city.zone-stats.v1, by how (complete: every readings partition closed it; "
    "waited: published after the longest wait with what came).",
    ["how"],
)
ZONE_STALE_RECORDS = Counter(
    "smartcity_rewards_zone_stale_records_total",
    "Zone shares and markers left out because the stage held a newer one from their readings partition (a "
    "replay, or a redelivery after a rebalance), or because they were sent long before their lane's latest.",
)
ZONE_LATE_SHARES = Counter(
    "smartcity_rewards_zone_late_shares_total",
    "Shares of a zone window that came after it was published with its values (final), left out.",
)


def install_zone_stage(
    app: faust.App,
    publish: Callable[[Sequence[OutgoingRecord]], Awaitable[None]],
    settings: RewardsSettings,
    oracle: str,
) -> ZoneStage:
    """Add the zone stage's agent to `app`, summing the shares the workers' key `oracle` (a did:key) attested;
    returns its stage (to `forget` on a rebalance)."""
    stage = ZoneStage(READINGS.partitions, max_wait_s=settings.zone_stats_max_wait_s)
    topic = app.topic(
        ZONE_PARTIALS.name, partitions=ZONE_PARTIALS.partitions, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(topic, name="zone-stage")
    async def zone_stage(stream: faust.StreamT) -> None:
        async for events in stream.noack_take(1000, within=0.5):
            done, dead = [], []
            for event in events:
                message = event.message
                try:
                    value = _verified(
                        message.value,
                        header_value(message.headers, attestation.HEADER),
                        oracle,
                        message.partition,
                    )
                except (ValueError, schemas.SchemaError) as exc:
                    dead.append(
                        dlq_record(
                            ZONE_PARTIALS,
                            key=message.key,
                            raw=message.value,
                            partition=message.partition,
                            offset=message.offset,
                            reason=str(exc),
                            consumer=settings.app_id,
                        )
                    )
                    done.append(event)
                    continue
                if value["app_id"] != settings.app_id:
                    done.append(event)  # another app's (a canary, a test): not this stage's to sum
                    continue
                late, stale = stage.late, stage.stale
                done.extend(stage.take(value, event, time.time(), message.partition))
                ZONE_LATE_SHARES.inc(stage.late - late)
                ZONE_STALE_RECORDS.inc(stage.stale - stale)
            if dead:
                await publish(dead)
                DLQ_RECORDS.labels(ZONE_PARTIALS.name, settings.app_id).inc(len(dead))
            now = time.time()
            due = stage.due(now)
            records = [zone_stats_record(window) for window, _ in due]
            await publish(records)
            for (_, pending), record in zip(due, records, strict=True):
                ZONE_WINDOWS_PUBLISHED.labels("complete" if stage.complete(pending) else "waited").inc()
                done.extend(stage.published(pending, record.value, now))
            stage.prune(now)
            for event in done:
                await stream.ack(event)

    return stage


def _verified(raw: bytes | None, header: bytes | None, oracle: str, lane: int) -> dict[str, Any]:
    """The partial or marker `raw` holds, attested by `oracle`, that came on `lane`; raises `ValueError` (an
    `AttestationError` naming its code, or the reason it is not one) or `SchemaError`."""
    if raw is None:
        raise ValueError("not a zone partial: no value")
    signer = attestation.verify_header(header, ZONE_PARTIALS.name, raw).signer
    if signer != oracle:
        raise attestation.AttestationError("untrusted-attestor", f"{signer} is not the rewards oracle")
    value = decode_json(raw)
    schemas.validate(ZONE_PARTIALS, value)
    # A share belongs on its zone's lane: copied to another, it would start a second, short window there.
    if not is_marker(value) and (home := partition_of(value["zone"], ZONE_PARTIALS.partitions)) != lane:
        raise ValueError(
            f"wrong-lane: a share of zone {value['zone']!r} belongs on partition {home}, not {lane}"
        )
    return value
