"""The rewards worker's Faust consumer fetches with the platform's wait, not Faust's hard-coded 1,500 ms (the
embedded broker answers a waiting fetch only at the wait's end)."""

from __future__ import annotations

import faust

from services.common.kafka import FETCH_WAIT_MAX_MS
from services.rewards.faust_transport import Transport


async def test_the_worker_consumer_waits_the_platforms_fetch_wait():
    app = faust.App("fetch-wait-test", broker="kafka://127.0.0.1:9", topic_disable_leader=True)
    assert app.transport.Consumer is not Transport.Consumer  # Faust's own, by default
    app.transport = Transport(app.conf.broker_consumer, app)
    consumer = app.consumer._thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == FETCH_WAIT_MAX_MS != 1500
    finally:
        await consumer.stop()
