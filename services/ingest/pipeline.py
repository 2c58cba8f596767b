"""The reading pipeline, independent of how readings arrive (HTTP or the MQTT bridge): check a batch, then
publish the accepted readings and return only once the broker acknowledged every one."""

from __future__ import annotations

import asyncio
import dataclasses
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
from services.ingest.ratelimit import Bucket, RateLimit
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
        rate_limit: RateLimit,
        consents: ConsentView,
        attestor: Keypair,
        consents_max_age_s: float = 5.0,
        bindings: BindingView | None = None,
        per_record: int = 1,
    ) -> None:
        self.engine = engine
        self.store = store
        self.producer = producer
        # JCS and signature verification are CPU-bound (~15 + ~45 us a reading; schema checks take ~2 us):
        # they run on this executor so the event loop keeps serving meanwhile. PyNaCl releases the GIL while
        # it verifies.
        self.executor = executor
        self.limits = limits
        # Counted in each device's locked sequence row, so the limit holds across instances.
        self.rate_limit = rate_limit
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
        # Readings a record carries (`readings.batch_records`); 1: one a record, as consumers before batch
        # records expect.
        self.per_record = per_record

    async def ingest(self, batch: Sequence[Any]) -> list[Rejection | None]:
        """Per reading, in order, None if accepted or why it was rejected.

        Raises `BrokerUnavailableError` if the broker did not acknowledge every accepted reading (then
        none is reported accepted, no sequence number advanced and no token was spent),
        `ConsentsUnavailableError` (a `BrokerUnavailableError`) if a reading passed the device checks but
        the consent view cannot say whether its owner consents, and `RateLimitedError` if every reading
        that passed the other checks (the sequence check included) is over its device's rate limit.
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
        for index, reading in enumerate(batch):
            if verdicts[index] is None:
                # Before the sequence step and the rate limit: a refused reading spends no token.
                verdicts[index] = checks.check_consent(
                    reading, devices[reading["device_id"]], self.consents.allows_at
                )
            if verdicts[index] is None:
                passing.append(index)
        retry_after_s = (
            await self._publish_new(batch, passing, verdicts, devices, received_at) if passing else None
        )
        self._count(verdicts)
        if retry_after_s is not None:
            raise RateLimitedError(verdicts, retry_after_s)
        return verdicts

    async def _publish_new(
        self,
        batch: Sequence[Any],
        passing: list[int],
        verdicts: list[Rejection | None],
        devices: dict[str, Device],
        received_at: str,
    ) -> int | None:
        """Publish the readings above their devices' last sequence numbers and within their rate limits, then
        advance both (see `services.ingest.sequences` for why in that order, under lock). Returns, when some
        were over their limit and none was published, the seconds until one of those devices may send again
        (the caller's `RateLimitedError`); else None."""
        async with sequences.locked(self.engine, {batch[i]["device_id"] for i in passing}) as locked:
            highest, buckets, retry_after_s = self._admit(batch, passing, verdicts, locked)
            envelopes = []
            for index in passing:
                if verdicts[index] is None:
                    reading = batch[index]
                    device = devices[reading["device_id"]]
                    person = self.bindings.person_of(device.owner) if self.bindings is not None else None
                    envelopes.append(readings.envelope(reading, device, received_at, person))
            await self._publish(envelopes)
            await locked.advance(highest, buckets)
        READINGS_ACCEPTED.inc(len(envelopes))
        return None if envelopes else retry_after_s

    def _admit(
        self,
        batch: Sequence[Any],
        passing: list[int],
        verdicts: list[Rejection | None],
        locked: sequences.LockedSequences,
    ) -> tuple[dict[str, int], dict[str, Bucket], int | None]:
        """Judge the `passing` readings one by one in batch order, setting their verdicts: each must be above
        its device's last published sequence number and every one admitted before it, then take a token of
        its device's bucket. One by one, so that a duplicate spends no token and a reading over the limit
        raises no floor: the next reading is judged as if it had not been sent.

        Returns per device the highest sequence number admitted and its bucket after the tokens spent, and
        the seconds until one of the devices over their limit may send again (None: none was)."""
        now = self.rate_limit.clock()
        states = dict(locked.states)
        buckets = dict(locked.buckets)
        spent: dict[str, Bucket] = {}
        highest: dict[str, int] = {}
        limited: set[str] = set()
        for index in passing:
            reading = batch[index]
            device_id = reading["device_id"]
            rejections, admitted = checks.check_sequences([(index, reading)], states)
            verdicts[index] = rejections.get(index)
            if verdicts[index] is not None:
                continue
            bucket = self.rate_limit.take(buckets[device_id], now)
            if bucket is None:
                verdicts[index] = Rejection(Reason.RATE_LIMITED)
                limited.add(device_id)
                continue
            buckets[device_id] = spent[device_id] = bucket
            highest.update(admitted)
            states[device_id] = dataclasses.replace(states[device_id], last_seq=reading["seq"])
        retry_after_s = min((self.rate_limit.retry_after_s(buckets[d], now) for d in limited), default=None)
        return highest, spent, retry_after_s

    @staticmethod
    def _count(verdicts: list[Rejection | None]) -> None:
        for verdict in verdicts:
            if verdict is not None:
                READINGS_REJECTED.labels(verdict.reason.value).inc()

    async def _publish(self, envelopes: list[dict[str, Any]]) -> None:
        if not envelopes:
            return
        started = time.perf_counter()
        records = (
            attested(self.attestor, [readings.outgoing_record(e) for e in envelopes])
            if self.per_record == 1
            else readings.batch_records(self.attestor, envelopes, self.per_record)
        )
        errors = await self.producer.send_batch(records)
        PUBLISH_LATENCY.observe(time.perf_counter() - started)
        failed = [error for error in errors if error]
        if failed:
            PUBLISH_FAILURES.inc()
            raise BrokerUnavailableError(
                f"{len(failed)} of {len(errors)} readings not acknowledged: {failed[0]}"
            )
