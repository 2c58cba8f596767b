"""The MQTT bridge: readings published by devices to ``city/devices/{device_id}/readings`` go through the
same pipeline (the same checks, the same publish-after-acknowledgement) as HTTP batches, and each reading
gets an answer on ``city/devices/{device_id}/acks``:

    {"seq": 7, "status": "accepted", "reason": null}
    {"seq": 7, "status": "rejected", "reason": "duplicate: seq 7 <= 7, already published"}
    {"seq": 7, "status": "retry", "reason": "broker_unavailable", "retry_after_s": 5}

A message holds one reading, or ``{"readings": [...]}``. Messages from many devices are gathered into one
pipeline batch (up to `mqtt_batch_size` readings or `mqtt_batch_wait_ms`), so MQTT gets the throughput
of HTTP batches. A device that gets no ack (or "retry") sends the reading again: the sequence check makes
that harmless.

Several ingest instances split the readings between them: their bridges subscribe as one MQTT shared
subscription group (``$share/<group>/...``, `mqtt_share_group`), and the broker hands each message to one
bridge of the group; the delivered topic is still the device's own. Whichever instance takes a message, the
device's sequence number and rate limit are checked in PostgreSQL under its row lock. The broker hands out
messages, not devices: two messages a device sends without waiting for an ack may reach two instances and be
checked at once, and if the later sequence number is published first, the earlier one is refused as a
duplicate. A device that must not lose one sends its next message after the previous one's ack, or puts its
readings in one message. The bridge speaks MQTT 5, in which a broker without shared subscriptions refuses
the subscription (then the bridge stays unready and says why) rather than taking ``$share/...`` for a topic
filter that no message matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import SQLAlchemyError

from services.common.events import encode_json
from services.common.http import loads_strict
from services.common.kafka import BrokerUnavailableError
from services.ingest.checks import Reason, Rejection
from services.ingest.metrics import READINGS_REJECTED
from services.ingest.pipeline import RateLimitedError, ReadingPipeline
from services.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

READINGS_TOPIC = "city/devices/{device_id}/readings"
ACKS_TOPIC = "city/devices/{device_id}/acks"


@dataclass(frozen=True)
class Received:
    """One reading taken from a message, with the device its topic names."""

    topic_device: str
    reading: Any


def readings_filter(prefix: str, share_group: str) -> str:
    """The topic filter of every device's readings, in `share_group`'s shared subscription unless empty."""
    readings = prefix + READINGS_TOPIC.format(device_id="+")
    return f"$share/{share_group}/{readings}" if share_group else readings


def parse_message(topic: str, payload: bytes, prefix: str, max_bytes: int) -> tuple[str, list[Any]] | None:
    """The device id a readings topic names and the readings of its message; None if the topic is not a
    readings topic. A payload that is not JSON, too large, or not a reading or ``{"readings": [...]}``
    yields ``[payload-as-is]`` so that it gets its rejection like any malformed reading."""
    parts = topic.removeprefix(prefix).split("/")
    if topic[: len(prefix)] != prefix or len(parts) != 4 or parts[:2] != ["city", "devices"]:
        return None
    if parts[3] != "readings" or not parts[2]:
        return None
    if len(payload) > max_bytes:
        return parts[2], [None]
    try:
        body = loads_strict(payload)
    except ValueError:
        return parts[2], [None]
    if isinstance(body, dict) and isinstance(body.get("readings"), list):
        return parts[2], body["readings"]
    return parts[2], [body]


def ack(reading: Any, verdict: Rejection | None) -> dict[str, Any]:
    """The ack of one reading."""
    seq = reading.get("seq") if isinstance(reading, dict) else None
    return {
        "seq": seq if isinstance(seq, int) else None,
        "status": "accepted" if verdict is None else "rejected",
        "reason": None if verdict is None else str(verdict),
    }


def topic_mismatch(received: Received) -> Rejection | None:
    """A reading must come on its own device's topic (the topic is where its ack goes)."""
    reading = received.reading
    if isinstance(reading, dict) and reading.get("device_id") != received.topic_device:
        return Rejection(Reason.INVALID_READING, "device_id: not the device of the topic it came on")
    return None


class MqttBridge:
    """Subscribes to every device's readings topic, as one of its share group, and answers on its acks
    topic."""

    def __init__(self, pipeline: ReadingPipeline, settings: IngestSettings) -> None:
        assert settings.mqtt_url, "the bridge needs INGEST_MQTT_URL"
        url = urlsplit(settings.mqtt_url)
        self.hostname = url.hostname or "127.0.0.1"
        self.port = url.port or 1883
        self.pipeline = pipeline
        self.settings = settings
        self.prefix = settings.mqtt_topic_prefix
        self.subscription = readings_filter(self.prefix, settings.mqtt_share_group)
        self._queue: asyncio.Queue[Received] = asyncio.Queue(maxsize=settings.mqtt_batch_size * 4)
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Bridge until cancelled, reconnecting with backoff when the MQTT broker goes away."""
        backoff = 0.5
        while True:
            try:
                async with aiomqtt.Client(
                    self.hostname,
                    self.port,
                    identifier=f"smartcity-ingest-{uuid.uuid4().hex[:12]}",
                    protocol=aiomqtt.ProtocolVersion.V5,
                ) as client:
                    await self._subscribe(client)
                    self.connected.set()
                    backoff = 0.5
                    # Either task failing (the connection dropped) stops the other: reconnect both.
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self._receive(client))
                        group.create_task(self._batches(client))
            except* aiomqtt.MqttError as failure:
                self.connected.clear()
                log.warning(
                    "MQTT broker %s:%d unavailable (%s); retrying in %.1fs",
                    self.hostname,
                    self.port,
                    failure.exceptions[0],
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        """Subscribe to the readings; raises `aiomqtt.MqttError` with the broker's reason if it refuses."""
        granted = await client.subscribe(self.subscription, qos=1)
        refused = [code for code in granted if isinstance(code, ReasonCode) and code.is_failure]
        if refused:
            raise aiomqtt.MqttError(
                f"the broker refused the subscription to {self.subscription}: {refused[0]}"
            )

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
            parsed = parse_message(message.topic.value, payload, self.prefix, self.settings.max_body_bytes)
            if parsed is None:
                continue
            device_id, batch = parsed
            for reading in batch:
                await self._queue.put(Received(device_id, reading))

    async def _batches(self, client: aiomqtt.Client) -> None:
        wait_s = self.settings.mqtt_batch_wait_ms / 1000
        while True:
            batch = [await self._queue.get()]
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    while len(batch) < self.settings.mqtt_batch_size:
                        batch.append(await self._queue.get())
            await self._answer(client, batch, await self._verdicts(batch))

    async def _verdicts(self, batch: list[Received]) -> list[dict[str, Any]]:
        """Each reading's ack: the pipeline's verdict, or "retry" when the batch could not be published."""
        mismatched = [topic_mismatch(received) for received in batch]
        for bad in mismatched:
            if bad is not None:
                READINGS_REJECTED.labels(bad.reason.value).inc()
        checked = [received.reading for received, bad in zip(batch, mismatched, strict=True) if bad is None]
        try:
            verdicts = iter(await self.pipeline.ingest(checked))
        except RateLimitedError as exc:
            verdicts = iter(exc.verdicts)
        except Exception as exc:
            # Whatever went wrong, nothing of this batch was reported accepted: the devices retry.
            if isinstance(exc, BrokerUnavailableError | SQLAlchemyError | OSError):
                log.warning("MQTT batch not published: %s", exc)
            else:
                log.exception("MQTT batch failed")
            retry = {
                "status": "retry",
                "reason": "broker_unavailable" if isinstance(exc, BrokerUnavailableError) else "unavailable",
                "retry_after_s": self.settings.retry_after_s,
            }
            return [
                ack(received.reading, bad) if bad else {**ack(received.reading, None), **retry}
                for received, bad in zip(batch, mismatched, strict=True)
            ]
        return [
            ack(received.reading, bad if bad else next(verdicts))
            for received, bad in zip(batch, mismatched, strict=True)
        ]

    async def _answer(
        self, client: aiomqtt.Client, batch: list[Received], acks: list[dict[str, Any]]
    ) -> None:
        for received, answer in zip(batch, acks, strict=True):
            topic = self.prefix + ACKS_TOPIC.format(device_id=received.topic_device)
            await client.publish(topic, encode_json(answer), qos=1)
