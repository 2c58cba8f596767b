"""The shared producer against the real broker: acknowledgements and key -> partition agreement."""

from aiokafka.partitioner import DefaultPartitioner

from services.common.kafka import KafkaProducer, OutgoingRecord, ensure_topics
from services.common.topics import Topic
from tests.support.topics import end_offsets, records_published_during


async def test_keys_land_where_aiokafka_would_put_them(kafka_bootstrap):
    """Rewards are produced by Faust (aiokafka) and read by key elsewhere: every producer of a topic must map
    a key to the same partition, which the Java/aiokafka murmur2 partitioner guarantees."""
    topic = Topic("test.partitioner.v1", key="wallet id", schema="dlq.v1.json", partitions=6)
    ensure_topics(kafka_bootstrap, [topic])
    producer = KafkaProducer(kafka_bootstrap, "partitioner-test")
    keys = [f"did:key:z6Mk-test-{i}" for i in range(40)]
    try:
        start = await end_offsets(kafka_bootstrap, topic)
        errors = await producer.send_batch(
            [OutgoingRecord(topic, key, {"i": i}) for i, key in enumerate(keys)]
        )
        assert errors == [None] * len(keys)
    finally:
        producer.close()
    messages = await records_published_during(kafka_bootstrap, topic, start)
    placed = {m.key().decode(): m.partition() for m in messages if m.key().decode() in keys}
    assert len(placed) == len(keys)
    partitions = list(range(topic.partitions))
    partitioner = DefaultPartitioner()
    assert placed == {key: partitioner(key.encode(), partitions, partitions) for key in keys}
