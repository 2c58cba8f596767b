"""The one registry of Kafka topics: name, key, value schema, partitions and cleanup policy.

Every producer, consumer, the topic bootstrap (`smartcity topics create`) and the tests use it, so a
topic's contract lives in exactly one place. Value schemas are files under ``schemas/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CleanupPolicy = Literal["delete", "compact"]
DLQ_SUFFIX = ".dlq.v1"


@dataclass(frozen=True)
class Topic:
    """A topic and its contract."""

    name: str
    key: str
    schema: str
    partitions: int = 6
    cleanup_policy: CleanupPolicy = "delete"
    has_dlq: bool = False

    @property
    def dlq(self) -> Topic:
        """The dead-letter topic of this topic: same key, a DLQ envelope as value."""
        if not self.has_dlq:
            raise ValueError(f"{self.name} has no DLQ")
        base = self.name.removesuffix(".v1")
        return Topic(name=base + DLQ_SUFFIX, key=self.key, schema="dlq.v1.json", partitions=1)

    @property
    def config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy}


READINGS = Topic("city.readings.v1", key="device id", schema="readings.v1.json", has_dlq=True)
REWARDS = Topic("city.rewards.v1", key="wallet id", schema="rewards.v1.json", has_dlq=True)
ZONE_STATS = Topic("city.zone-stats.v1", key="zone", schema="zone-stats.v1.json", partitions=3)
# Keyed and partitioned as READINGS: the decision on readings partition p goes to partition p.
REWARD_DECISIONS = Topic(
    "city.reward-decisions.v1", key="device id", schema="reward-decisions.v1.json", partitions=6
)
LEDGER_SETTLED = Topic("city.ledger.settled.v1", key="wallet id", schema="ledger-settled.v1.json")
LEDGER_CHECKPOINTS = Topic(
    "city.ledger.checkpoints.v1", key='"chain"', schema="ledger-checkpoints.v1.json", partitions=1
)
CONSENTS = Topic(
    "city.consents.v1",
    key="subject + category",
    schema="consents.v1.json",
    partitions=3,
    cleanup_policy="compact",
    has_dlq=True,
)
MERCHANTS = Topic(
    "city.merchants.v1",
    key="merchant wallet",
    schema="merchants.v1.json",
    partitions=3,
    cleanup_policy="compact",
    has_dlq=True,
)

PRIMARY_TOPICS: tuple[Topic, ...] = (
    READINGS,
    REWARDS,
    ZONE_STATS,
    REWARD_DECISIONS,
    LEDGER_SETTLED,
    LEDGER_CHECKPOINTS,
    CONSENTS,
    MERCHANTS,
)
ALL_TOPICS: tuple[Topic, ...] = PRIMARY_TOPICS + tuple(t.dlq for t in PRIMARY_TOPICS if t.has_dlq)


def by_name(name: str) -> Topic:
    """Look a topic up by name (DLQs included)."""
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(name)
