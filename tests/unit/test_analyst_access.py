"""The analysts' Kafka principal (privacy issue 14): it reads the k-anonymous zone statistics and the ledger's
signed tree heads, and nothing kept per device, wallet or person; it writes nothing."""

from __future__ import annotations

import pytest

from services.common import kafka_access, topics
from services.common.topics import ANALYST, Acl

PERSONAL_KEYS = ("device", "wallet", "person", "subject")
"""Words of a topic's key that make its records personal: a device, a wallet, a person (consents' subject)."""


def held_personal(topic: topics.Topic) -> bool:
    """The rule, derived from the registry: a topic keyed by device, wallet or person, an attested one (readings
    and rewards and merchants, with their signers' evidence), a DLQ (any record that failed), or a service's own
    working topic, one its writer reads back. The last is needed since the rewards worker's topics are keyed for
    their partitioning, not by whose records they hold (decisions "as its reading", zone partials by zone,
    snapshots by app id and partition), yet hold devices, wallets and values."""
    return (
        any(word in topic.key for word in PERSONAL_KEYS)
        or topic.attested
        or topic.name.endswith(topics.DLQ_SUFFIX)
        or bool(set(topic.writers) & set(topic.readers))
    )


def test_the_analyst_is_a_principal_but_no_service() -> None:
    assert ANALYST == "analyst"
    assert ANALYST not in topics.SERVICES
    assert set(topics.PRINCIPALS) == {*topics.SERVICES, ANALYST}
    assert len(topics.PRINCIPALS) == len(topics.SERVICES) + 1
    assert topics.CONSUMER_GROUPS[ANALYST] == "analyst"


def test_the_analyst_reads_exactly_zone_stats_and_checkpoints() -> None:
    assert sorted(topics.acls(ANALYST), key=repr) == sorted(
        [
            Acl("topic", "city.zone-stats.v1", "literal", "Read"),
            Acl("topic", "city.zone-stats.v1", "literal", "Describe"),
            Acl("topic", "city.ledger.checkpoints.v1", "literal", "Read"),
            Acl("topic", "city.ledger.checkpoints.v1", "literal", "Describe"),
            Acl("group", "analyst", "prefixed", "Read"),
        ],
        key=repr,
    )


def test_the_analyst_writes_nothing_and_is_no_reader_of_a_service() -> None:
    assert all(acl.operation != "Write" for acl in topics.acls(ANALYST))
    for topic in topics.ALL_TOPICS:
        assert ANALYST not in topic.writers, topic.name
        assert ANALYST not in topic.readers, topic.name  # a DLQ's writers are its topic's readers


@pytest.mark.parametrize("topic", topics.ALL_TOPICS, ids=lambda t: t.name)
def test_the_analyst_reads_nothing_personal(topic: topics.Topic) -> None:
    """What `held_personal` holds personal is never read."""
    if held_personal(topic):
        assert not topics.reads(ANALYST, topic), topic.name


def test_the_personal_topics_are_caught_by_the_rule() -> None:
    """The rule above reaches what the design calls personal, so it cannot pass by matching nothing, and not
    what is the analysts', so it cannot pass by matching everything."""
    for name in (
        "city.readings.v1",
        "city.rewards.v1",
        "city.zone-partials.v1",
        "city.reward-decisions.v1",
        "city.rewards-snapshots.v1",
        "city.ledger.settled.v1",
        "city.consents.v1",
        "city.bindings.v1",
        "city.merchants.dlq.v1",
        "city.zone-partials.dlq.v1",
    ):
        topic = topics.by_name(name)
        assert held_personal(topic), name
        assert not topics.reads(ANALYST, topic), name
    for topic in topics.ALL_TOPICS:
        if topic.analysts:
            assert not held_personal(topic), topic.name


def test_a_dlq_is_never_the_analysts() -> None:
    for topic in topics.PRIMARY_TOPICS:
        if topic.has_dlq:
            assert ANALYST not in topic.dlq.writers + topic.dlq.readers, topic.name
            assert not topic.dlq.analysts, topic.name


def test_no_service_gains_an_acl_from_the_analysts_topics() -> None:
    """Marking a topic the analysts' grants nothing to a service: each still reads only what it consumes."""
    for service in topics.SERVICES:
        read = {a.name for a in topics.acls(service) if a.operation == "Read" and a.resource == "topic"}
        assert read == {t.name for t in topics.ALL_TOPICS if service in t.readers}, service


def test_the_analysts_acl_bindings_are_exactly_its_grants() -> None:
    """What `kafka_access.apply` hands the broker for the analyst (it is among the principals it sets up)."""
    assert topics.ANALYST in topics.PRINCIPALS
    granted = {(b.name, b.operation.name) for b in kafka_access.bindings(topics.ANALYST)}
    assert {b.principal for b in kafka_access.bindings(topics.ANALYST)} == {"User:analyst"}
    assert granted == {
        ("city.zone-stats.v1", "READ"),
        ("city.zone-stats.v1", "DESCRIBE"),
        ("city.ledger.checkpoints.v1", "READ"),
        ("city.ledger.checkpoints.v1", "DESCRIBE"),
        ("analyst", "READ"),
    }


def test_apply_refuses_without_the_analysts_password() -> None:
    passwords = {s: f"{s}-pw" for s in topics.SERVICES}
    with pytest.raises(ValueError, match="analyst"):
        kafka_access.apply("broker:9092", passwords)
