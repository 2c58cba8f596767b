"""`services.common.offsets` on the real broker: a topic's true end and a group's backlog."""

from __future__ import annotations

import uuid

from services.common import offsets
from services.common.kafka import KafkaProducer, OutgoingRecord, ensure_topics
from services.common.topics import Topic
from tests.support.topics import commit_offsets, unique_group


async def test_the_end_counts_every_record_of_every_batch_and_the_backlog_what_is_not_committed(
    kafka_bootstrap: str,
):
    topic = Topic(f"test.offsets-{uuid.uuid4().hex[:8]}.v1", key="id", schema="dlq.v1.json", partitions=3)
    ensure_topics(kafka_bootstrap, [topic])
    assert offsets.end_offsets(kafka_bootstrap, topic) == {0: 0, 1: 0, 2: 0}
    producer = KafkaProducer(kafka_bootstrap, "offsets-test")
    try:
        for batch in range(4):  # several batches per partition: the last one is where the broker errs
            records = [OutgoingRecord(topic, f"k{i % 7}", {"b": batch, "i": i}) for i in range(25)]
            assert await producer.send_batch(records) == [None] * 25
    finally:
        producer.close()
    ends = offsets.end_offsets(kafka_bootstrap, topic)
    assert sum(ends.values()) == 100

    group = unique_group("offsets-test")
    assert offsets.committed_offsets(kafka_bootstrap, group, topic) == {0: 0, 1: 0, 2: 0}
    assert offsets.backlog(kafka_bootstrap, group, topic) == 100
    # The group commits all of partition 0 and half of partition 1.
    commit_offsets(kafka_bootstrap, group, {0: ends[0], 1: ends[1] // 2}, topic)
    assert offsets.committed_offsets(kafka_bootstrap, group, topic) == {0: ends[0], 1: ends[1] // 2, 2: 0}
    assert offsets.backlog(kafka_bootstrap, group, topic) == ends[1] - ends[1] // 2 + ends[2]
