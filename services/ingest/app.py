"""The ingest service: device registrations and signed readings (HTTP, and MQTT when configured),
published to ``city.readings.v1``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common import db
from services.common.http import broker_ready, database_ready
from services.common.http import create_app as create_service_app
from services.common.kafka import KafkaProducer
from services.common.settings import PlatformSettings
from services.ingest.api.routes import router
from services.ingest.cache import TtlCache
from services.ingest.checks import Limits
from services.ingest.mqtt import MqttBridge
from services.ingest.pipeline import ReadingPipeline
from services.ingest.ratelimit import RateLimiter
from services.ingest.settings import SERVICE, IngestSettings
from services.ingest.store import DeviceStore


async def mqtt_ready(app: FastAPI) -> bool:
    """Readiness: the MQTT bridge is connected and subscribed."""
    return app.state.mqtt.connected.is_set()


def create_app(platform: PlatformSettings | None = None, settings: IngestSettings | None = None) -> FastAPI:
    """The ingest app; its lifespan migrates the database, opens the producer and starts the MQTT bridge
    when ``INGEST_MQTT_URL`` is set."""
    platform = platform or PlatformSettings()
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = await db.prepare_database(platform, SERVICE)
        app.state.settings = settings
        app.state.engine = db.create_engine(url)
        app.state.producer = KafkaProducer(
            platform.bootstrap_servers, client_id=SERVICE, send_timeout_s=platform.kafka_send_timeout_s
        )
        executor = ThreadPoolExecutor(settings.check_workers, thread_name_prefix="ingest-checks")
        app.state.devices = DeviceStore(
            app.state.engine, TtlCache(settings.device_cache_ttl_s, settings.device_cache_size)
        )
        app.state.pipeline = ReadingPipeline(
            app.state.engine,
            app.state.devices,
            app.state.producer,
            executor,
            Limits(settings.max_reading_bytes, settings.max_ahead_s, settings.max_age_s),
            RateLimiter(settings.device_rate_per_s, settings.device_burst),
        )
        app.state.mqtt = MqttBridge(app.state.pipeline, settings) if settings.mqtt_url else None
        bridge = asyncio.create_task(app.state.mqtt.run()) if app.state.mqtt else None
        try:
            yield
        finally:
            if bridge is not None:
                bridge.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await bridge
            executor.shutdown(wait=True)
            await asyncio.to_thread(app.state.producer.close)
            await app.state.engine.dispose()

    app = create_service_app(
        service=SERVICE,
        version="0.1.0",
        lifespan=lifespan,
        readiness={"database": database_ready, "broker": broker_ready}
        | ({"mqtt": mqtt_ready} if settings.mqtt_url else {}),
        description="Devices bound to wallets, and signed sensor readings (HTTP, MQTT) checked and published "
        "to Kafka.",
    )
    app.include_router(router)
    return app
