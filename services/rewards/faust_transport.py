"""Faust's aiokafka transport with the platform's fetch wait (`services.common.kafka.FETCH_WAIT_MAX_MS`).

Faust builds its worker consumer with ``fetch_max_wait_ms=1500`` and no setting to change it; on the embedded
broker, which answers a waiting fetch only at the wait's end, readings then waited ~0.4 s (up to 1.5 s) before
the worker saw them. The consumer Faust built is given the platform's wait before it starts (aiokafka hands it
to its fetcher then).
"""

from __future__ import annotations

from typing import Any

import aiokafka
from faust.transport.drivers import aiokafka as faust_aiokafka

from services.common.kafka import FETCH_WAIT_MAX_MS


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_WAIT_MAX_MS  # read by AIOKafkaConsumer.start
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    """Faust's ``kafka://`` transport, its worker consumer fetching with the platform's wait."""

    Consumer = _Consumer
