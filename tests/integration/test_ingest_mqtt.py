"""The MQTT bridge on the real Mosquitto (127.0.0.1:1883, 2.0: MQTT 5 shared subscriptions), with a topic
prefix unique to each test: readings go through the same checks as HTTP ones and each gets its ack on the
device's acks topic; two ingest instances' bridges split the readings between them."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiomqtt
from fastapi import FastAPI

from services.common import embedded
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.topics import READINGS
from services.ingest.app import create_app
from services.ingest.checks import Rejection
from services.ingest.settings import IngestSettings
from tests.support import consents, ingest
from tests.support.asgi import running
from tests.support.topics import end_offsets, readings_published_during

MQTT_URL = "mqtt://127.0.0.1:1883"


def _app(
    platform: PlatformSettings,
    prefix: str,
    consents_start_timeout_s: float = 5.0,
    share_group: str = "smartcity-ingest",
) -> FastAPI:
    return create_app(
        platform,
        IngestSettings(
            mqtt_url=MQTT_URL,
            mqtt_topic_prefix=prefix,
            mqtt_batch_wait_ms=5,
            consents_start_timeout_s=consents_start_timeout_s,
            mqtt_share_group=share_group,
        ),
    )


def _count_taken(app: FastAPI, taken: Counter[str]) -> None:
    """Count in `taken` the readings `app`'s bridge hands its pipeline ("received") and the accepted ones."""
    ingest_batch = app.state.pipeline.ingest

    async def counting(batch: list[Any]) -> list[Rejection | None]:
        taken["received"] += len(batch)
        verdicts = await ingest_batch(batch)
        taken["accepted"] += sum(verdict is None for verdict in verdicts)
        return verdicts

    app.state.pipeline.ingest = counting


@asynccontextmanager
async def _device_link(prefix: str) -> AsyncIterator[aiomqtt.Client]:
    """A device's side of MQTT, subscribed to every ack under `prefix`."""
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=f"test-{uuid.uuid4().hex[:8]}") as client:
        await client.subscribe(f"{prefix}city/devices/+/acks", qos=1)
        yield client


async def _acks(client: aiomqtt.Client, count: int) -> list[tuple[str, dict]]:
    """The next `count` acks, with the topic each came on (bounded: a broken bridge fails, not hangs)."""
    received: list[tuple[str, dict]] = []
    async with asyncio.timeout(30):
        async for message in client.messages:
            received.append((message.topic.value, json.loads(message.payload)))
            if len(received) == count:
                return received
    return received


async def test_readings_over_mqtt_are_checked_published_and_acked(platform_settings: PlatformSettings):
    prefix = f"t{uuid.uuid4().hex[:10]}/"
    owner, device, other = Keypair.generate(), Keypair.generate(), Keypair.generate()
    bootstrap = platform_settings.bootstrap_servers
    readings_topic = f"{prefix}city/devices/{device.did}/readings"
    app = _app(platform_settings, prefix)
    async with running(app) as http, _device_link(prefix) as link:
        assert (await http.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201
        await consents.grant(bootstrap, owner, app)
        await app.state.mqtt.connected.wait()
        assert (await http.get("/readyz")).json()["checks"] == {
            "database": True,
            "broker": True,
            "consents": True,
            "bindings": True,
            "decisions": True,
            "mqtt": True,
        }
        start = await end_offsets(bootstrap, READINGS)
        await link.publish(readings_topic, json.dumps(ingest.reading(device, 1)), qos=1)
        [(topic, first)] = await _acks(link, 1)
        assert topic == f"{prefix}city/devices/{device.did}/acks"
        assert first == {"seq": 1, "status": "accepted", "reason": None}

        batch = {
            "readings": [
                ingest.reading(device, 1),  # a replay
                {**ingest.reading(device, 2), "zone": "harbour"},  # tampered
                ingest.reading(other, 1),  # on another device's topic
                ingest.reading(device, 3, values={"db_a": 500}),
                ingest.reading(device, 4),
            ]
        }
        await link.publish(readings_topic, json.dumps(batch), qos=1)
        await link.publish(readings_topic, b"{not json", qos=1)
        acks = [ack for _topic, ack in await _acks(link, 6)]
        published = await readings_published_during(bootstrap, start)

    assert [(a["seq"], a["status"], (a["reason"] or "").split(":")[0]) for a in acks] == [
        (1, "rejected", "duplicate"),
        (2, "rejected", "bad_signature"),
        (1, "rejected", "invalid_reading"),
        (3, "rejected", "invalid_values"),
        (4, "accepted", ""),
        (None, "rejected", "invalid_reading"),
    ]
    seqs = sorted(p.reading["seq"] for p in published if p.reading["device_id"] == device.did)
    assert seqs == [1, 4]


async def test_mqtt_readings_get_retry_when_the_broker_is_unreachable(platform_settings: PlatformSettings):
    prefix = f"t{uuid.uuid4().hex[:10]}/"
    owner, device = Keypair.generate(), Keypair.generate()
    unreachable = platform_settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{embedded.free_port()}", "kafka_send_timeout_s": 1.0}
    )
    app = _app(unreachable, prefix, consents_start_timeout_s=1)
    async with running(app) as http, _device_link(prefix) as link:
        assert (await http.post("/v1/devices", json=ingest.registration(owner, device))).status_code == 201
        await app.state.mqtt.connected.wait()
        await link.publish(
            f"{prefix}city/devices/{device.did}/readings", json.dumps(ingest.reading(device, 1)), qos=1
        )
        [(_topic, answer)] = await _acks(link, 1)
    assert (
        answer["status"] == "retry"
        and answer["reason"] == "broker_unavailable"
        and answer["retry_after_s"] > 0
    )
    # Nothing advanced: with the broker back, the same reading is accepted over HTTP (same database).
    back = create_app(platform_settings)
    async with running(back) as http:
        await consents.grant(platform_settings.bootstrap_servers, owner, back)
        response = await http.post("/v1/readings", json={"readings": [ingest.reading(device, 1)]})
        assert response.json()["results"][0]["status"] == "accepted"


async def test_two_instances_split_the_readings_each_taken_once(platform_settings: PlatformSettings):
    prefix = f"t{uuid.uuid4().hex[:10]}/"
    group = f"g{uuid.uuid4().hex[:10]}"  # this test's own: the Mosquitto is shared
    owner, devices = Keypair.generate(), [Keypair.generate() for _ in range(20)]
    bootstrap = platform_settings.bootstrap_servers
    apps = [_app(platform_settings, prefix, share_group=group) for _ in range(2)]
    taken: list[Counter[str]] = [Counter(), Counter()]
    acks: list[dict] = []
    async with running(apps[0]) as http, running(apps[1]), _device_link(prefix) as link:
        for app, counter in zip(apps, taken, strict=True):
            _count_taken(app, counter)
        for device in devices:
            assert (
                await http.post("/v1/devices", json=ingest.registration(owner, device))
            ).status_code == 201
        await consents.grant(bootstrap, owner, *apps)
        await asyncio.gather(*(app.state.mqtt.connected.wait() for app in apps))
        start = await end_offsets(bootstrap, READINGS)
        for seq in (1, 2):
            # Each device sends its next reading once it has the previous one's ack (see services/ingest/mqtt.py).
            for device in devices:
                topic = f"{prefix}city/devices/{device.did}/readings"
                await link.publish(topic, json.dumps(ingest.reading(device, seq)), qos=1)
            acks += [ack for _topic, ack in await _acks(link, len(devices))]
        published = await readings_published_during(bootstrap, start)

    sent = 2 * len(devices)
    assert [ack["status"] for ack in acks] == ["accepted"] * sent
    # Each reading reached one instance (without sharing, both would have taken all 40), and each took some.
    assert taken[0]["received"] + taken[1]["received"] == sent
    assert taken[0]["accepted"] + taken[1]["accepted"] == sent
    assert all(0 < counter["received"] < sent for counter in taken), taken
    mine = [p.reading for p in published]
    dids = {device.did for device in devices}
    assert sorted((r["device_id"], r["seq"]) for r in mine if r["device_id"] in dids) == sorted(
        (device.did, seq) for device in devices for seq in (1, 2)
    )
