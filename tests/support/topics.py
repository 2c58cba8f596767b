"""Reading what was published to a topic, for integration tests (a fresh consumer group each time)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from services.common import attestation
from services.common.kafka import partition_of
from services.common.signing import Keypair
from services.common.topics import READINGS, REWARDS, Topic


def unique_group(prefix: str) -> str:
    """A consumer group id nobody else uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def did_of(keypair: Keypair) -> str:
    """The record key of a topic keyed by a wallet or person: their DID."""
    return keypair.did


def keypairs_on_one_partition(topic: Topic, keys: Sequence[Callable[[Keypair], str]]) -> list[Keypair]:
    """One fresh keypair per function of `keys`, such that the record keys they make hash to the same
    partition of `topic`: a marker record then shows a consumer has read past the others (a topic is read in
    order within a partition only)."""
    first = Keypair.generate()
    partition = partition_of(keys[0](first), topic.partitions)
    chosen = [first]
    for key in keys[1:]:
        keypair = Keypair.generate()
        while partition_of(key(keypair), topic.partitions) != partition:
            keypair = Keypair.generate()
        chosen.append(keypair)
    return chosen


def _consumer(bootstrap: str) -> Consumer:
    return Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique_group("test-reader"), "enable.auto.commit": False}
    )


def _end_offsets(bootstrap: str, topic: Topic) -> dict[int, int]:
    consumer = _consumer(bootstrap)
    try:
        partitions = consumer.list_topics(topic.name, timeout=10).topics[topic.name].partitions
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic.name, p), timeout=10)[1]
            for p in partitions
        }
    finally:
        consumer.close()


def _read_between(bootstrap: str, topic: Topic, start: dict[int, int], end: dict[int, int]) -> list[Message]:
    consumer = _consumer(bootstrap)
    pending = {p: o for p, o in end.items() if o > start.get(p, 0)}
    consumer.assign([TopicPartition(topic.name, p, start.get(p, 0)) for p in pending])
    messages: list[Message] = []
    try:
        for _ in range(300):  # a bound, not a timing: each poll returns as soon as records arrive
            if not pending:
                break
            for message in consumer.consume(500, 0.1):
                if message.error():
                    continue
                messages.append(message)
                if message.offset() + 1 >= pending.get(message.partition(), 0):
                    pending.pop(message.partition(), None)
    finally:
        consumer.close()
    assert not pending, f"records missing from {topic.name} partitions {pending}"
    return messages


async def records_published_during(bootstrap: str, topic: Topic, start: dict[int, int]) -> list[Message]:
    """Every record of `topic` from the `start` offsets to the current end (records acknowledged so far)."""
    end = await asyncio.to_thread(_end_offsets, bootstrap, topic)
    return await asyncio.to_thread(_read_between, bootstrap, topic, start, end)


@dataclass(frozen=True)
class PublishedReading:
    """One reading of a ``city.readings.v1`` record (a batch record holds several)."""

    envelope: dict[str, Any]
    line: bytes
    """Its bytes, as attested."""
    attestation: dict[str, Any]
    """Its own attestation (index and path within its record's statement), as the rewards worker gives it on."""
    message: Message
    """The record carrying it."""

    @property
    def reading(self) -> dict[str, Any]:
        return self.envelope["reading"]


async def readings_published_during(bootstrap: str, start: dict[int, int]) -> list[PublishedReading]:
    """Every reading of the ``city.readings.v1`` records from the `start` offsets to the current end, each
    checked against its record's attestation (whoever signed it); poison other tests put on the topic (records
    that are not attested readings) is left out."""
    published = []
    for message in await records_published_during(bootstrap, READINGS, start):
        try:
            header = dict(message.headers() or []).get(attestation.HEADER)
            lines = attestation.verify_record(header, READINGS.name, message.value() or b"")
            published.extend(
                PublishedReading(json.loads(line), line, attested, message) for line, attested in lines
            )
        except (attestation.AttestationError, ValueError):
            continue
    return published


@dataclass(frozen=True)
class PublishedReward:
    """One reward of a ``city.rewards.v1`` record (a batch record holds several)."""

    value: dict[str, Any]
    attestation: dict[str, Any]
    """Its own attestation by the oracle (index and path within its record's statement), as the ledger keeps it."""
    message: Message
    """The record carrying it."""

    @property
    def reward(self) -> dict[str, Any]:
        return self.value["reward"]


def rewards_of(messages: Sequence[Message]) -> list[PublishedReward]:
    """Every reward the ``city.rewards.v1`` records among `messages` carry, each with its own attestation
    checked against its record's statement (whoever signed it); records that are not attested rewards are left
    out."""
    published = []
    for message in messages:
        if message.topic() != REWARDS.name:
            continue
        try:
            header = dict(message.headers() or []).get(attestation.HEADER)
            lines = attestation.record_lines(message.value() or b"")
            values = [json.loads(line) for line in lines]
            covered = [attestation.encode(value["reward"]) for value in values]
            if attestation.is_batch_record(header, message.value() or b""):
                own = attestation.verify_covered(header, REWARDS.name, covered)
            else:
                own = [attestation.parse(header)]
                attestation.verify(own[0], REWARDS.name, covered[0])
            published.extend(PublishedReward(v, a, message) for v, a in zip(values, own, strict=True))
        except (attestation.AttestationError, ValueError, KeyError, TypeError):
            continue
    return published


def commit_offsets(bootstrap: str, group: str, offsets: dict[int, int], topic: Topic) -> None:
    """Commit `offsets` (by partition) of `topic` for consumer group `group`, as if it had read that far."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(
            offsets=[TopicPartition(topic.name, p, offset) for p, offset in offsets.items()],
            asynchronous=False,
        )
    finally:
        consumer.close()


async def skip_to_the_end(bootstrap: str, group: str, topic: Topic) -> None:
    """Commit `topic`'s end offsets for `group`: a consumer of that group then reads only what comes next,
    not what earlier tests left on the topic."""
    offsets = await end_offsets(bootstrap, topic)
    await asyncio.to_thread(commit_offsets, bootstrap, group, offsets, topic)


async def end_offsets(bootstrap: str, topic: Topic) -> dict[int, int]:
    return await asyncio.to_thread(_end_offsets, bootstrap, topic)


def _values_with_keys(
    bootstrap: str, topic: Topic, keys: set[str], count: int, deadline_s: float
) -> list[Any]:
    consumer = _consumer(bootstrap)
    partitions = consumer.list_topics(topic.name, timeout=10).topics[topic.name].partitions
    consumer.assign([TopicPartition(topic.name, p, OFFSET_BEGINNING) for p in partitions])
    found: list[Any] = []
    deadline = time.monotonic() + deadline_s
    try:
        while len(found) < count and time.monotonic() < deadline:
            for message in consumer.consume(500, 0.2):
                if not message.error() and (message.key() or b"").decode() in keys:
                    found.append(json.loads(message.value()))
    finally:
        consumer.close()
    return found


async def values_with_keys(
    bootstrap: str, topic: Topic, keys: set[str], count: int, deadline_s: float = 30.0
) -> list[Any]:
    """The JSON values of `topic`'s records keyed by one of `keys`, read from the beginning until `count` of
    them arrived (or the deadline passed: the caller asserts what it got)."""
    return await asyncio.to_thread(_values_with_keys, bootstrap, topic, keys, count, deadline_s)


def device_of(message: Message) -> str | None:
    """The device id of a ``city.readings.v1`` record (its key names the owner's person or wallet, not the
    device); None for a record that is not a readings envelope (poison other tests put on the topic)."""
    try:
        return json.loads(message.value())["reading"]["device_id"]
    except (ValueError, TypeError, KeyError):
        return None
