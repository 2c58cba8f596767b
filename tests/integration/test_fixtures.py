"""The fixtures reach a real broker and a real PostgreSQL."""

import asyncio

import asyncpg
from alembic.script import ScriptDirectory

from services.common import db
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.topics import ALL_TOPICS, READINGS


async def test_database_is_real(platform_settings):
    url = await db.prepare_database(platform_settings, "identity")
    conn = await asyncpg.connect(db.libpq_dsn(url))
    try:
        assert await conn.fetchval("SELECT count(*) FROM identities") == 0
        head = ScriptDirectory.from_config(db.alembic_config("identity", url)).get_current_head()
        assert await conn.fetchval("SELECT version_num FROM alembic_version") == head
    finally:
        await conn.close()


async def test_broker_has_every_topic_and_acknowledges(kafka_bootstrap):
    producer = KafkaProducer(kafka_bootstrap, "fixture-test")
    try:
        topics = (await asyncio.to_thread(producer._producer.list_topics, timeout=10)).topics
        for topic in ALL_TOPICS:
            assert topic.name in topics
            assert len(topics[topic.name].partitions) == topic.partitions
        errors = await producer.send_batch([OutgoingRecord(READINGS.dlq, "k", {"probe": True})])
        assert errors == [None]
    finally:
        producer.close()
