"""The shared `BatchConsumer` on the real broker: a record the handler raises on is isolated and
dead-lettered while the records beside it are handled; a dependency failure is retried, not dead-lettered;
a consumer that holds records and commits nothing says it is stuck."""

from __future__ import annotations

import asyncio
import json
import uuid

from services.common.batch_consumer import POISON_ATTEMPTS, BatchConsumer, IncomingRecord, Rejection
from services.common.kafka import KafkaProducer, OutgoingRecord, ensure_topics
from services.common.topics import Topic
from tests.support.topics import unique_group, values_with_keys
from tests.support.waiting import holds, until


def _topic() -> Topic:
    name = f"test.consumer-{uuid.uuid4().hex[:8]}.v1"
    return Topic(name, key="id", schema="dlq.v1.json", partitions=2, has_dlq=True, readers=("test",))


async def _run(
    kafka_bootstrap: str, topic: Topic, handler, values: list[dict]
) -> tuple[BatchConsumer, asyncio.Task]:
    ensure_topics(kafka_bootstrap, [topic, topic.dlq])
    producer = KafkaProducer(kafka_bootstrap, "consumer-test")
    errors = await producer.send_batch([OutgoingRecord(topic, v["id"], v) for v in values])
    assert errors == [None] * len(values)
    consumer = BatchConsumer(
        bootstrap_servers=kafka_bootstrap,
        topic=topic,
        group_id=unique_group("consumer-test"),
        handler=handler,
        producer=producer,
        decode=False,
    )
    return consumer, asyncio.create_task(consumer.run())


async def _stop(consumer: BatchConsumer, task: asyncio.Task) -> None:
    consumer.stop()
    await task
    consumer.producer.close()


async def test_a_record_the_handler_raises_on_is_dead_lettered_and_the_rest_handled(kafka_bootstrap: str):
    topic = _topic()
    values = [{"id": f"r{i}", "poison": i == 7} for i in range(20)]
    handled: set[str] = set()
    calls_with_poison = 0

    async def handler(records: list[IncomingRecord]) -> list[Rejection]:
        nonlocal calls_with_poison
        decoded = [json.loads(r.raw) for r in records]
        if any(v["poison"] for v in decoded):
            calls_with_poison += 1
            raise ValueError("this fold cannot take it")
        handled.update(v["id"] for v in decoded)
        return []

    consumer, task = await _run(kafka_bootstrap, topic, handler, values)
    try:
        await until(holds(lambda: len(handled) == 19 and consumer.progress.in_hand == 0), "the batch")
        [dead] = await values_with_keys(kafka_bootstrap, topic.dlq, {"r7"}, 1)
    finally:
        await _stop(consumer, task)
    assert handled == {f"r{i}" for i in range(20) if i != 7}
    assert dead["reason"] == "handler error: ValueError: this fold cannot take it"
    assert json.loads(dead["value"]) == values[7]
    # Split down to the poison record, which alone was tried POISON_ATTEMPTS times.
    assert calls_with_poison >= POISON_ATTEMPTS
    assert consumer.progress.stuck(max_s=0) is None


async def test_a_failing_dependency_is_retried_and_nothing_dead_lettered(kafka_bootstrap: str):
    topic = _topic()
    values = [{"id": f"t{i}"} for i in range(5)]
    handled: set[str] = set()
    failures = 2 * POISON_ATTEMPTS  # more than a poison record gets: a dependency error is no poison

    async def handler(records: list[IncomingRecord]) -> list[Rejection]:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionRefusedError("the database is down")
        handled.update(json.loads(r.raw)["id"] for r in records)
        return []

    consumer, task = await _run(kafka_bootstrap, topic, handler, values)
    try:
        await until(holds(lambda: len(handled) == 5 and consumer.progress.in_hand == 0), "the batch")
    finally:
        await _stop(consumer, task)
    assert failures == 0
    assert (
        await values_with_keys(kafka_bootstrap, topic.dlq, {v["id"] for v in values}, 1, deadline_s=2) == []
    )


async def test_a_consumer_holding_records_it_cannot_commit_says_it_is_stuck(kafka_bootstrap: str):
    topic = _topic()
    release = asyncio.Event()

    async def handler(records: list[IncomingRecord]) -> list[Rejection]:
        await release.wait()  # a handler that never returns on its own
        return []

    consumer, task = await _run(kafka_bootstrap, topic, handler, [{"id": "s1"}])
    try:
        await until(holds(lambda: consumer.progress.in_hand == 1), "the record taken in")
        assert consumer.progress.stuck(max_s=3600) is None  # not for long yet
        reason = consumer.progress.stuck(max_s=0)
        assert reason is not None and "1 records in hand and committed nothing" in reason
        release.set()
        await until(holds(lambda: consumer.progress.in_hand == 0), "the commit")
        assert consumer.progress.stuck(max_s=0) is None
    finally:
        release.set()
        await _stop(consumer, task)
