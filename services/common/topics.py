"""The one registry of Kafka topics: name, key, value schema, partitions, cleanup policy, and which service
writes and which reads each.

Every producer, consumer, the topic bootstrap (`smartcity topics create`), the Kafka ACLs (`acls`: each
service writes only its own topics and reads only what it consumes, the analysts read only what is meant for
them, in docker-compose and as Strimzi KafkaUsers) and the tests use it, so a topic's contract lives in
exactly one place. Value schemas are files under ``schemas/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

CleanupPolicy = Literal["delete", "compact"]
DLQ_SUFFIX = ".dlq.v1"

INGEST, REWARDS_SERVICE, LEDGER, IDENTITY, DIRECTORY = "ingest", "rewards", "ledger", "identity", "directory"
SERVICES = (INGEST, REWARDS_SERVICE, LEDGER, IDENTITY, DIRECTORY)
"""The platform's services: the processes it runs, each as a Kafka user of its own."""
ANALYST = "analyst"
"""The analysts' Kafka user: it reads what is meant for analysts (`Topic.analysts`) and writes nothing. Analysts'
own tools read as it, and so does the portal (its impact page sums the zone statistics): no service whose
ACLs reach personal topics."""
PRINCIPALS = (*SERVICES, ANALYST)
"""Every Kafka user the platform creates, with its credentials and ACLs (``User:<principal>``)."""
CONSUMER_GROUPS: dict[str, str] = {
    INGEST: "ingest",
    REWARDS_SERVICE: "smartcity-rewards",
    LEDGER: "ledger",
    IDENTITY: "identity",
    DIRECTORY: "directory",
    ANALYST: "analyst",
}
"""The prefix of every consumer group (and Faust app id) a principal uses: its ACLs allow groups by prefix."""


@dataclass(frozen=True)
class Topic:
    """A topic and its contract."""

    name: str
    key: str
    schema: str
    partitions: int = 6
    cleanup_policy: CleanupPolicy = "delete"
    has_dlq: bool = False
    writers: tuple[str, ...] = ()
    """The services that produce to it."""
    readers: tuple[str, ...] = ()
    """The services that consume it (and write its DLQ); never the analysts (`analysts`)."""
    analysts: bool = False
    """Whether `ANALYST` may read it: only what holds nothing per device, wallet or person. Its DLQ
    (written by its `readers`) is not theirs."""
    attested: bool = False
    """Its records carry their writer's batch attestation (`services.common.attestation`), which its readers
    check against the writer's role before anything takes effect."""
    attested_member: str | None = None
    """The member of each value the attestation covers, when not the whole value: the public part, the rest
    being a private disclosure its commitment binds (``city.rewards.v1``: `services.common.evidence`)."""

    def attested_part(self, value: Any) -> Any:
        """What the attestation of `value` (a record value of this topic) covers."""
        return value if self.attested_member is None else value[self.attested_member]

    @property
    def dlq(self) -> Topic:
        """The dead-letter topic of this topic: same key, a DLQ envelope as value, written by its readers."""
        if not self.has_dlq:
            raise ValueError(f"{self.name} has no DLQ")
        base = self.name.removesuffix(".v1")
        return Topic(
            name=base + DLQ_SUFFIX, key=self.key, schema="dlq.v1.json", partitions=1, writers=self.readers
        )

    @property
    def config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy}


# Keyed by the person the owner wallet is bound to, else by the owner wallet: everything a decision depends
# on (the device's memory, the wallet's and the person's caps) is in one partition, so rewards scales out.
READINGS = Topic(
    "city.readings.v1",
    key="person, else owner wallet",
    schema="readings.v1.json",
    has_dlq=True,
    attested=True,
    writers=(INGEST,),
    readers=(REWARDS_SERVICE,),
)
REWARDS = Topic(
    "city.rewards.v1",
    key="wallet id",
    schema="rewards.v1.json",
    has_dlq=True,
    attested=True,
    attested_member="reward",
    writers=(REWARDS_SERVICE,),
    readers=(LEDGER,),
)
# For analysts: aggregates only (no device, wallet or person), k-anonymous (`services.rewards.engine.ZoneWindow`).
# With the ledger's checkpoints, the only topic analysts read; readings, decisions, rewards, settlements,
# consents and bindings are personal.
ZONE_STATS = Topic(
    "city.zone-stats.v1",
    key="zone",
    schema="zone-stats.v1.json",
    partitions=3,
    writers=(REWARDS_SERVICE,),
    analysts=True,
)
# Rewards' second stage, keyed by zone: each readings partition's share of a zone's minute (values and device
# ids: personal), and per readings partition how far its windows are closed (`services.rewards.zones`);
# attested by the workers' rewards-oracle key, which the zone stage checks before it sums a share.
ZONE_PARTIALS = Topic(
    "city.zone-partials.v1",
    key="zone",
    schema="zone-partials.v1.json",
    partitions=3,
    has_dlq=True,
    attested=True,
    writers=(REWARDS_SERVICE,),
    readers=(REWARDS_SERVICE,),
)
# Keyed and partitioned as READINGS: the decisions on readings partition p go to partition p, a record per
# readings record (a decision a line), attested by the rewards oracle. The worker reads it back: it is the
# changelog its state is rebuilt from. Ingest keeps each decision for the person whose wallet it names (a
# signed read). Personal (device, wallet, values): no analyst reads it.
REWARD_DECISIONS = Topic(
    "city.reward-decisions.v1",
    key="as its readings record",
    schema="reward-decisions.v1.json",
    partitions=6,
    has_dlq=True,
    attested=True,
    writers=(REWARDS_SERVICE,),
    readers=(REWARDS_SERVICE, INGEST),
)
# Partitioned as READINGS: the snapshots of readings partition p's decision state go to partition p, each
# with the readings offset it covers (`services.rewards.snapshots`): a restart reads the latest and the
# decisions after it, not the rebuild horizon's. Personal (devices, wallets, values).
REWARDS_SNAPSHOTS = Topic(
    "city.rewards-snapshots.v1",
    key="app id + partition",
    schema="rewards-snapshots.v1.json",
    partitions=6,
    cleanup_policy="compact",
    attested=True,
    writers=(REWARDS_SERVICE,),
    readers=(REWARDS_SERVICE,),
)
# Keyed by wallet: personal, no analyst reads it.
LEDGER_SETTLED = Topic(
    "city.ledger.settled.v1", key="wallet id", schema="ledger-settled.v1.json", writers=(LEDGER,)
)
# Signed tree heads, public anyway (the ledger's `GET /v1/checkpoint`): analysts read them.
LEDGER_CHECKPOINTS = Topic(
    "city.ledger.checkpoints.v1",
    key='"chain"',
    schema="ledger-checkpoints.v1.json",
    partitions=1,
    writers=(LEDGER,),
    analysts=True,
)
CONSENTS = Topic(
    "city.consents.v1",
    key="subject + category",
    schema="consents.v1.json",
    partitions=3,
    cleanup_policy="compact",
    has_dlq=True,
    writers=(IDENTITY,),
    readers=(INGEST, REWARDS_SERVICE),
)
BINDINGS = Topic(
    "city.bindings.v1",
    key="wallet",
    schema="bindings.v1.json",
    partitions=3,
    cleanup_policy="compact",
    has_dlq=True,
    writers=(IDENTITY,),
    readers=(INGEST,),
)
MERCHANTS = Topic(
    "city.merchants.v1",
    key="merchant wallet",
    schema="merchants.v1.json",
    partitions=3,
    cleanup_policy="compact",
    has_dlq=True,
    attested=True,
    writers=(DIRECTORY,),
    readers=(LEDGER,),
)

PRIMARY_TOPICS: tuple[Topic, ...] = (
    READINGS,
    REWARDS,
    ZONE_STATS,
    ZONE_PARTIALS,
    REWARD_DECISIONS,
    REWARDS_SNAPSHOTS,
    LEDGER_SETTLED,
    LEDGER_CHECKPOINTS,
    CONSENTS,
    BINDINGS,
    MERCHANTS,
)
ALL_TOPICS: tuple[Topic, ...] = PRIMARY_TOPICS + tuple(t.dlq for t in PRIMARY_TOPICS if t.has_dlq)


def by_name(name: str) -> Topic:
    """Look a topic up by name (DLQs included)."""
    for topic in ALL_TOPICS:
        if topic.name == name:
            return topic
    raise KeyError(name)


@dataclass(frozen=True)
class Acl:
    """One allowed operation of a Kafka principal (``User:<principal>``, one of `PRINCIPALS`)."""

    resource: Literal["topic", "group"]
    name: str
    pattern: Literal["literal", "prefixed"]
    operation: Literal["Write", "Read", "Describe"]


def reads(principal: str, topic: Topic) -> bool:
    """Whether `principal` consumes `topic`: a service among its readers, the analysts where it is theirs."""
    return principal in topic.readers or (principal == ANALYST and topic.analysts)


def acls(principal: str) -> list[Acl]:
    """What `principal` may do on the broker: a service writes its topics and reads what it consumes, the
    analysts read what is theirs; each reader also its consumer groups."""
    granted: list[Acl] = []
    for topic in ALL_TOPICS:
        if principal in topic.writers:
            granted.append(Acl("topic", topic.name, "literal", "Write"))
        if reads(principal, topic):
            granted.append(Acl("topic", topic.name, "literal", "Read"))
        if principal in topic.writers or reads(principal, topic):
            granted.append(Acl("topic", topic.name, "literal", "Describe"))
    if any(reads(principal, topic) for topic in ALL_TOPICS):
        granted.append(Acl("group", CONSUMER_GROUPS[principal], "prefixed", "Read"))
    return granted
