"""The reading pipeline, independent of how readings arrive (HTTP or the MQTT bridge): check a batch, then
publish the accepted readings and return only once the broker acknowledged every one."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.bindings import BindingView
from services.common.consents import ConsentView
from services.common.events import now_rfc3339
from services.common.kafka import BrokerUnavailableError, KafkaProducer, attested
from services.common.signing import Keypair
from services.ingest import checks, readings, sequences
from services.ingest.checks import Limits, Reason, Rejection
from services.ingest.devices import Device
from services.ingest.metrics import (
    BATCH_SIZE,
    PUBLISH_FAILURES,
    PUBLISH_LATENCY,
    READINGS_ACCEPTED,
    READINGS_REJECTED,
)
from services.ingest.ratelimit import RateLimiter
from services.ingest.store import DeviceStore


class RateLimitedError(Exception):
    """Every reading of the batch that passed the other checks is over its device's rate limit."""

    def __init__(self, verdicts: list[Rejection | None], retry_after_s: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after_s}s")
        self.verdicts = verdicts
        self.retry_after_s = retry_after_s


class ConsentsUnavailableError(BrokerUnavailableError):
    """The consent view has not caught up with ``city.consents.v1`` (or lost the broker), so whether a
    reading's owner consents is not known: the batch is to be retried, not rejected."""


class BindingsUnavailableError(BrokerUnavailableError):
    """The binding view has not caught up with ``city.bindings.v1`` (or lost the broker), so whose person a
    reading's wallet is cannot be attested: the batch is to be retried, not published as unbound."""


class ReadingPipeline:
    """Checks batches of readings and publishes the accepted ones to ``city.readings.v1``."""

    def __init__(
        self,
        engine: AsyncEngine,
        store: DeviceStore,
        producer: KafkaProducer,
        executor: Executor,
        limits: Limits,
        rate_limiter: RateLimiter,
        consents: ConsentView,
        attestor: Keypair,
        consents_max_age_s: float = 5.0,
        bindings: BindingView | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.producer = producer
        # JCS and signature verification are CPU-bound (~15 + ~45 us a reading; schema checks take ~2 us):
        # they run on this executor so the event loop keeps serving meanwhile. PyNaCl releases the GIL while
        # it verifies.
        self.executor = executor
        self.limits = limits
        self.rate_limiter = rate_limiter
        # What the owners grant the city, followed from city.consents.v1; an answer older than
        # `consents_max_age_s` could miss a revocation, so the batch is retried instead.
        self.consents = consents
        self.consents_max_age_s = consents_max_age_s
        # Which person each wallet is bound to, followed from city.bindings.v1: ingest names it in the
        # envelope it attests, so the rewards policy can pay people rather than wallets. None: no bindings.
        self.bindings = bindings
        # Signs each published batch: ingest's word that its readings passed registration, consent and
        # sequence checks (the devices' own signatures stay inside, for auditors).
        self.attestor = attestor

    async def ingest(self, batch: Sequence[Any]) -> list[Rejection | None]:
        """Per reading, in order, None if accepted or why it was rejected.

        Raises `BrokerUnavailableError` if the broker did not acknowledge every accepted reading (then
        none is reported accepted, and no sequence number advanced), `ConsentsUnavailableError` (a
        `BrokerUnavailableError`) if a reading passed the device checks but the consent view cannot say
        whether its owner consents, and `RateLimitedError` if every reading that passed the other checks
        is over its device's rate limit.
        """
        BATCH_SIZE.observe(len(batch))
        received_at = now_rfc3339()
        loop = asyncio.get_running_loop()
        verdicts, devices = await asyncio.gather(
            loop.run_in_executor(self.executor, checks.check_readings, batch, time.time(), self.limits),
            self.store.lookup(checks.claimed_device_ids(batch)),
        )
        for index, reading in enumerate(batch):
            if verdicts[index] is None:
                verdicts[index] = checks.check_device(
                    reading, devices.get(reading["device_id"])
                ) or checks.check_attester(reading, devices)
        if any(verdict is None for verdict in verdicts) and not self.consents.healthy(
            self.consents_max_age_s
        ):
            raise ConsentsUnavailableError("the consent view has not caught up with city.consents.v1")
        if (
            self.bindings is not None
            and any(verdict is None for verdict in verdicts)
            and not self.bindings.healthy(self.consents_max_age_s)
        ):
            raise BindingsUnavailableError("the binding view has not caught up with city.bindings.v1")
        passing: list[int] = []
        limited: list[str] = []
        for index, reading in enumerate(batch):
            if verdicts[index] is None:
                # Before the rate limiter and the sequence step: a refused reading spends neither.
                verdicts[index] = checks.check_consent(
                    reading, devices[reading["device_id"]], self.consents.allows_at
                )
            if verdicts[index] is None:
                if self.rate_limiter.take(reading["device_id"]):
                    passing.append(index)
                else:
                    verdicts[index] = Rejection(Reason.RATE_LIMITED)
                    limited.append(reading["device_id"])
        if limited and not passing:
            self._count(verdicts)
            raise RateLimitedError(verdicts, min(self.rate_limiter.retry_after_s(d) for d in limited))
        if passing:
            await self._publish_new(batch, passing, verdicts, devices, received_at)
        self._count(verdicts)
        return verdicts

    async def _publish_new(
        self,
        batch: Sequence[Any],
        passing: list[int],
        verdicts: list[Rejection | None],
        devices: dict[str, Device],
        received_at: str,
    ) -> None:
        """Publish the readings above their devices' last sequence numbers, then advance those (see
        `services.ingest.sequences` for why in that order, under lock)."""
        async with sequences.locked(self.engine, {batch[i]["device_id"] for i in passing}) as locked:
            rejections, highest = checks.check_sequences(((i, batch[i]) for i in passing), locked.states)
            envelopes = []
            for index in passing:
                verdicts[index] = rejections.get(index)
                if verdicts[index] is None:
                    reading = batch[index]
                    device = devices[reading["device_id"]]
                    person = self.bindings.person_of(device.owner) if self.bindings is not None else None
                    envelopes.append(readings.envelope(reading, device, received_at, person))
            await self._publish(envelopes)
            await locked.advance(highest)
        READINGS_ACCEPTED.inc(len(envelopes))

    @staticmethod
    def _count(verdicts: list[Rejection | None]) -> None:
        for verdict in verdicts:
            if verdict is not None:
                READINGS_REJECTED.labels(verdict.reason.value).inc()

    async def _publish(self, envelopes: list[dict[str, Any]]) -> None:
        if not envelopes:
            return
        started = time.perf_counter()
        records = attested(self.attestor, [readings.outgoing_record(e) for e in envelopes])
        errors = await self.producer.send_batch(records)
        PUBLISH_LATENCY.observe(time.perf_counter() - started)
        failed = [error for error in errors if error]
        if failed:
            PUBLISH_FAILURES.inc()
            raise BrokerUnavailableError(
                f"{len(failed)} of {len(errors)} readings not acknowledged: {failed[0]}"
            )
