"""The rewards worker's Prometheus metrics, and how a batch's outcomes count in them."""

from __future__ import annotations

import logging
import time
from collections import Counter as CounterOf
from collections.abc import Sequence
from typing import Any

import faust
from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import DLQ_RECORDS
from services.common.topics import READINGS
from services.rewards.engine import epoch
from services.rewards.processor import Outcome

log = logging.getLogger(__name__)

READINGS_PROCESSED = Counter(
    "smartcity_rewards_readings_total",
    "Readings processed, by outcome (rewarded, unrewarded: decided to earn nothing, replayed: decided "
    "before and sent again, rejected: dead-lettered).",
    ["outcome"],
)
DECISION_REASONS = Counter(
    "smartcity_rewards_decision_reasons_total",
    "Reasons in decisions: why a reading earned nothing, or a rule paid less (caps).",
    ["reason"],
)
REWARDS_PRODUCED = Counter(
    "smartcity_rewards_produced_total", "Rewards produced (broker-acknowledged), by rule.", ["rule"]
)
REWARDED_MICRO_UNITS = Counter(
    "smartcity_rewards_micro_units_total", "Micro-units paid out in produced rewards.", ["rule", "currency"]
)
REJECTIONS = Counter("smartcity_rewards_rejections_total", "Readings sent to the DLQ, by reason.", ["reason"])
BATCH_SECONDS = Histogram(
    "smartcity_rewards_batch_duration_seconds",
    "Time from taking a batch of readings to the broker acknowledging all its output records.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_SIZE = Histogram(
    "smartcity_rewards_batch_size", "Readings per batch.", buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000)
)
LATENCY_SECONDS = Histogram(
    "smartcity_rewards_latency_seconds",
    "From ingest accepting a reading (received_at) to the broker acknowledging its decision and rewards.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LAG = Gauge(
    "smartcity_rewards_consumer_lag",
    "Readings behind the end of their partition, as of the last batch.",
    ["partition"],
)
RECOVERY_RECORDS = Gauge(
    "smartcity_rewards_recovery_records",
    "Decisions read to rebuild a readings partition's state at its last recovery (after its snapshot, if it "
    "had one): bounded by what was decided in a snapshot interval.",
    ["partition"],
)
RECOVERY_SNAPSHOT = Gauge(
    "smartcity_rewards_recovery_from_snapshot",
    "1 if a readings partition's state was last recovered from its snapshot, 0 from the rebuild horizon.",
    ["partition"],
)
POLICY_INFO = Gauge("smartcity_rewards_policy_info", "The policy version in force (value 1).", ["version"])
POLICY_LOADS = Counter(
    "smartcity_rewards_policy_loads_total", "Policy files read, by outcome (loaded, refused).", ["outcome"]
)


def observe_batch(outcomes: Sequence[Outcome], consumer: str) -> None:
    """Count a batch whose records the broker acknowledged (summed first: a label lookup per reading
    would cost more than a tenth of the decision)."""
    now = time.time()
    readings: CounterOf[str] = CounterOf()
    reasons: CounterOf[str] = CounterOf()
    rewards: CounterOf[tuple[str, str]] = CounterOf()
    paid: CounterOf[tuple[str, str]] = CounterOf()
    for outcome in outcomes:
        if outcome.rejection is not None:
            readings["rejected"] += 1
            REJECTIONS.labels(outcome.rejection).inc()
            DLQ_RECORDS.labels(READINGS.name, consumer).inc()
            dead = outcome.records[0].value
            log.warning(
                "dead-lettered %s[%s]@%s: %s",
                READINGS.name,
                dead["partition"],
                dead["offset"],
                dead["reason"],
            )
            continue
        if outcome.replayed:
            readings["replayed"] += 1
        else:
            readings["rewarded" if outcome.rewards else "unrewarded"] += 1
            if outcome.decision is not None:
                reasons.update(reason.code for reason in outcome.decision.reasons)
            if outcome.received_at is not None:
                LATENCY_SECONDS.observe(max(0.0, now - epoch(outcome.received_at)))
        for value in outcome.rewards:
            reward = value["reward"]
            rewards[reward["rule"], reward["currency"]] += 1
            paid[reward["rule"], reward["currency"]] += reward["amount"]
    for outcome_label, count in readings.items():
        READINGS_PROCESSED.labels(outcome_label).inc(count)
    for code, count in reasons.items():
        DECISION_REASONS.labels(code).inc(count)
    for (rule, currency), count in rewards.items():
        REWARDS_PRODUCED.labels(rule).inc(count)
        REWARDED_MICRO_UNITS.labels(rule, currency).inc(paid[rule, currency])


def observe_lag(app: faust.App, events: Sequence[Any]) -> None:
    """The lag of each partition in the batch: records after its last event."""
    last = {event.message.tp: event.message.offset for event in events}
    for tp, offset in last.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            LAG.labels(str(tp.partition)).set(max(0, highwater - offset - 1))
