"""Where a topic ends and how far a consumer group has committed: a group's backlog on a topic.

Used to drain the platform before it stops (``smartcity up``) and to tell a caught-up pipeline from a stuck
one (``python -m bench chaos``). Blocking calls: run them in a thread from asyncio code.
"""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, KafkaError, TopicPartition

from services.common.kafka import FETCH_WAIT_MAX_MS, client_security
from services.common.topics import Topic

TIMEOUT_S = 10.0


def _consumer(bootstrap: str, group: str | None = None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            **client_security(),
            # Never subscribes: with `group`, it only reads that group's committed offsets.
            "group.id": group or f"offsets-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.wait.max.ms": FETCH_WAIT_MAX_MS,
        }
    )


def end_offsets(bootstrap: str, topic: Topic) -> dict[int, int]:
    """Per partition, the offset the next record will get.

    The listed high watermark is not trusted: the embedded broker (Tansu) lists the start of a partition's
    last batch plus one. The last listed record is read instead, and the partition to its end.
    """
    consumer = _consumer(bootstrap)
    try:
        partitions = sorted(consumer.list_topics(topic.name, timeout=TIMEOUT_S).topics[topic.name].partitions)
        ends: dict[int, int] = {}
        starts = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic.name, p), timeout=TIMEOUT_S)
            ends[p] = high
            if high > low:
                starts.append(TopicPartition(topic.name, p, high - 1))
        if not starts:
            return ends
        consumer.assign(starts)
        pending = {tp.partition for tp in starts}
        deadline = time.monotonic() + TIMEOUT_S
        while pending:
            # consume() returns at the count or the timeout: short polls, one deadline.
            messages = consumer.consume(10000, 0.05)
            if not messages and time.monotonic() > deadline:
                raise TimeoutError(f"{topic.name}: partitions {sorted(pending)} did not reach their end")
            for message in messages:
                error = message.error()
                if error is None:
                    ends[message.partition()] = max(ends[message.partition()], message.offset() + 1)
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
        return ends
    finally:
        consumer.close()


def committed_offsets(bootstrap: str, group: str, topic: Topic) -> dict[int, int]:
    """Per partition, the offset `group` has committed on `topic` (0 where it has committed nothing)."""
    consumer = _consumer(bootstrap, group)
    try:
        partitions = consumer.list_topics(topic.name, timeout=TIMEOUT_S).topics[topic.name].partitions
        committed = consumer.committed([TopicPartition(topic.name, p) for p in partitions], timeout=TIMEOUT_S)
        return {tp.partition: max(tp.offset, 0) for tp in committed}
    finally:
        consumer.close()


def backlog(bootstrap: str, group: str, topic: Topic) -> int:
    """How many records of `topic` `group` has not committed yet."""
    ends = end_offsets(bootstrap, topic)
    committed = committed_offsets(bootstrap, group, topic)
    return sum(max(0, end - committed.get(p, 0)) for p, end in ends.items())
