"""The reading pipeline, independent of how readings arrive (HTTP now, an MQTT bridge later): check a
batch, then publish the accepted readings and return only once the broker acknowledged every one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from services.common.events import now_rfc3339
from services.common.kafka import BrokerUnavailableError, KafkaProducer
from services.ingest import checks, readings
from services.ingest.checks import Rejection
from services.ingest.metrics import (
    BATCH_SIZE,
    PUBLISH_FAILURES,
    PUBLISH_LATENCY,
    READINGS_ACCEPTED,
    READINGS_REJECTED,
)
from services.ingest.store import DeviceStore


class ReadingPipeline:
    """Checks batches of readings and publishes the accepted ones to ``city.readings.v1``."""

    def __init__(self, store: DeviceStore, producer: KafkaProducer, executor: Executor) -> None:
        self.store = store
        self.producer = producer
        # Schema validation and signature verification are CPU-bound (~120 + ~70 us a reading): they run on
        # this executor so the event loop keeps serving meanwhile. PyNaCl releases the GIL while it verifies,
        # but jsonschema holds it, so more than a couple of threads measured no faster.
        self.executor = executor

    async def ingest(self, batch: Sequence[Any]) -> list[Rejection | None]:
        """Per reading, in order, None if accepted or why it was rejected.

        Raises `BrokerUnavailableError` if the broker did not acknowledge every accepted reading: then
        none may be reported accepted (some may have been published; the reading id makes a retry
        harmless downstream).
        """
        BATCH_SIZE.observe(len(batch))
        received_at = now_rfc3339()
        loop = asyncio.get_running_loop()
        verdicts, devices = await asyncio.gather(
            loop.run_in_executor(self.executor, checks.check_readings, batch),
            self.store.lookup(checks.claimed_device_ids(batch)),
        )
        envelopes = []
        for index, reading in enumerate(batch):
            if verdicts[index] is None:
                device = devices.get(reading["device_id"])
                verdicts[index] = checks.check_device(reading, device)
                if verdicts[index] is None and device is not None:
                    envelopes.append(readings.envelope(reading, device, received_at))
        await self._publish(envelopes)
        READINGS_ACCEPTED.inc(len(envelopes))
        for verdict in verdicts:
            if verdict is not None:
                READINGS_REJECTED.labels(verdict.reason.value).inc()
        return verdicts

    async def _publish(self, envelopes: list[dict[str, Any]]) -> None:
        if not envelopes:
            return
        started = time.perf_counter()
        errors = await self.producer.send_batch([readings.outgoing_record(e) for e in envelopes])
        PUBLISH_LATENCY.observe(time.perf_counter() - started)
        failed = [error for error in errors if error]
        if failed:
            PUBLISH_FAILURES.inc()
            raise BrokerUnavailableError(
                f"{len(failed)} of {len(errors)} readings not acknowledged: {failed[0]}"
            )
