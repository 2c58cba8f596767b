"""The ingest service: device registrations and signed readings (HTTP, and MQTT when configured),
published to ``city.readings.v1``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from confluent_kafka import KafkaException
from fastapi import FastAPI

from services.common import liveness, topics
from services.common.batch_consumer import TRANSIENT_ERRORS, BatchConsumer
from services.common.bindings import BindingView, development_issuer
from services.common.consents import ConsentView
from services.common.db import TRANSIENT_ERRORS as DATABASE_ERRORS
from services.common.dead_letters import DeadLetterProducer
from services.common.follower import TopicView
from services.common.http import broker_ready, database_and_producer, database_ready
from services.common.http import create_app as create_service_app
from services.common.lag import LagMonitor
from services.common.roles import Role, operator_key, service_key
from services.common.settings import PlatformSettings
from services.ingest.api.decisions import router as decisions_router
from services.ingest.api.erasures import router as erasures_router
from services.ingest.api.routes import router
from services.ingest.cache import TtlCache
from services.ingest.checks import Limits
from services.ingest.decisions import DecisionFold, DecisionStore
from services.ingest.erasures import ErasureStore
from services.ingest.mqtt import MqttBridge
from services.ingest.pipeline import ReadingPipeline
from services.ingest.ratelimit import RateLimit
from services.ingest.settings import SERVICE, IngestSettings
from services.ingest.store import DeviceStore

log = logging.getLogger(__name__)


async def consents_ready(app: FastAPI) -> bool:
    """Readiness: the consent view has caught up with city.consents.v1 and hears from the broker."""
    return app.state.consents.healthy(app.state.settings.consents_max_age_s)


async def bindings_ready(app: FastAPI) -> bool:
    """Readiness: the binding view has caught up with city.bindings.v1 and hears from the broker."""
    return app.state.bindings.healthy(app.state.settings.consents_max_age_s)


async def follow_consents(view: TopicView, timeout_s: float, stop: asyncio.Event) -> None:
    """Start `view`, retrying until the broker answers or `stop` is set; each attempt takes at most
    `timeout_s`."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(view.start, timeout_s)
            return
        except KafkaException as exc:
            log.warning("consents not followed yet, readings that need one get 503: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


def decisions_stuck(app: FastAPI) -> list[str]:
    """Why the decisions consumer is stuck: it ended, or holds records it has committed nothing of for longer
    than the stall bound."""
    ended = ["decisions consumer ended"] if app.state.decisions_task.done() else []
    return ended + liveness.stuck([app.state.decisions_consumer.progress], app.state.stall_s)


async def decisions_ready(app: FastAPI) -> bool:
    """Readiness: the consumer keeping people's reward decisions runs and moves."""
    return not decisions_stuck(app)


async def watch_decisions(app: FastAPI) -> None:
    """Report ingest stuck (`liveness.report_stuck`: the process exits) once `decisions_stuck` says so."""
    while not (reasons := decisions_stuck(app)):
        await asyncio.sleep(1)
    liveness.report_stuck(reasons)


async def mqtt_ready(app: FastAPI) -> bool:
    """Readiness: the MQTT bridge is connected and subscribed."""
    return app.state.mqtt.connected.is_set()


def create_app(platform: PlatformSettings | None = None, settings: IngestSettings | None = None) -> FastAPI:
    """The ingest app; its lifespan migrates the database, opens the producer, follows the consents on
    ``city.consents.v1`` (dead-lettering the records it refuses) and starts the MQTT bridge when
    ``INGEST_MQTT_URL`` is set."""
    platform = platform or PlatformSettings()
    settings = settings or IngestSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with database_and_producer(app, platform, SERVICE):
            app.state.settings = settings
            app.state.signed_read_skew_s = platform.signed_read_skew_s
            # Who may register city devices and revoke any device (development: the data dir's operator key).
            app.state.operators = frozenset(settings.operators or [operator_key(platform.data_dir).did])
            executor = ThreadPoolExecutor(settings.check_workers, thread_name_prefix="ingest-checks")
            # The view dead-letters the consent records it refuses, without ever waiting on the broker.
            dead_letters = DeadLetterProducer(platform.bootstrap_servers, client_id=f"{SERVICE}-consents")
            app.state.consents = ConsentView(
                platform.bootstrap_servers, client_id=SERVICE, dead_letter=dead_letters
            )
            # Which person each wallet is bound to (named in the envelopes ingest attests); the records it
            # refuses (forged, another wallet's presentation) are dead-lettered the same way.
            binding_dead_letters = DeadLetterProducer(
                platform.bootstrap_servers, client_id=f"{SERVICE}-bindings"
            )
            app.state.bindings = BindingView(
                platform.bootstrap_servers,
                settings.binding_issuers or [development_issuer(platform.data_dir)],
                client_id=SERVICE,
                dead_letter=binding_dead_letters,
            )
            stop_following = asyncio.Event()
            following = asyncio.create_task(
                follow_consents(app.state.consents, settings.consents_start_timeout_s, stop_following)
            )
            following_bindings = asyncio.create_task(
                follow_consents(app.state.bindings, settings.consents_start_timeout_s, stop_following)
            )
            # Serve once every consent on record is known; without a broker, serve anyway (rejections that
            # need no consent are still answered, the rest get 503) while the view keeps trying.
            await asyncio.wait({following, following_bindings}, timeout=settings.consents_start_timeout_s)
            if following.done() and not await asyncio.to_thread(
                app.state.consents.wait_ready, settings.consents_ready_timeout_s
            ):
                log.warning("the consent view has not caught up yet; readings that need a consent get 503")
            if following_bindings.done() and not await asyncio.to_thread(
                app.state.bindings.wait_ready, settings.consents_ready_timeout_s
            ):
                log.warning("the binding view has not caught up yet; readings get 503")
            app.state.devices = DeviceStore(
                app.state.engine, TtlCache(settings.device_cache_ttl_s, settings.device_cache_size)
            )
            app.state.pipeline = ReadingPipeline(
                app.state.engine,
                app.state.devices,
                app.state.producer,
                executor,
                Limits(settings.max_reading_bytes, settings.max_ahead_s, settings.max_age_s),
                RateLimit(settings.device_rate_per_s, settings.device_burst),
                app.state.consents,
                service_key(settings.attestor_key, platform.data_dir, Role.INGEST_ATTESTOR),
                settings.consents_max_age_s,
                app.state.bindings,
                platform.readings_per_record,
            )
            # People's reward decisions (city.reward-decisions.v1), kept for their signed reads; a record it
            # cannot keep goes to the topic's DLQ with the reason, and the consumer goes on.
            app.state.decisions = DecisionStore(app.state.engine)
            app.state.erasures = ErasureStore(app.state.engine, app.state.devices)
            app.state.stall_s = platform.consumer_stall_s
            app.state.decisions_consumer = decisions = BatchConsumer(
                bootstrap_servers=platform.bootstrap_servers,
                topic=topics.REWARD_DECISIONS,
                group_id=settings.decisions_group,
                handler=DecisionFold(
                    app.state.decisions,
                    settings.rewards_oracles
                    or [service_key(None, platform.data_dir, Role.REWARDS_ORACLE).did],
                ),
                producer=app.state.producer,
                decode=False,  # records of lines, checked by the handler
                session_timeout_ms=platform.kafka_session_timeout_ms,
                transient=(*TRANSIENT_ERRORS, *DATABASE_ERRORS),
            )
            app.state.decisions_task = asyncio.create_task(decisions.run(), name="ingest-decisions")
            # smartcity_consumer_lag of the decisions group and of both views, sampled on a thread of its own.
            lag = LagMonitor(
                platform.bootstrap_servers,
                groups={settings.decisions_group: [topics.REWARD_DECISIONS]},
                views=[app.state.consents, app.state.bindings],
            )
            lag.start()
            watchdog = asyncio.create_task(watch_decisions(app), name="ingest-decisions-watchdog")
            app.state.mqtt = MqttBridge(app.state.pipeline, settings) if settings.mqtt_url else None
            bridge = asyncio.create_task(app.state.mqtt.run()) if app.state.mqtt else None
            try:
                yield
            finally:
                await asyncio.to_thread(lag.close)
                watchdog.cancel()
                decisions.stop()
                await asyncio.gather(app.state.decisions_task, return_exceptions=True)
                if bridge is not None:
                    bridge.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await bridge
                executor.shutdown(wait=True)
                # Wait out an attempt in progress rather than cancel it: its thread still uses the consumer.
                stop_following.set()
                await following
                await following_bindings
                await asyncio.to_thread(app.state.consents.close)
                await asyncio.to_thread(app.state.bindings.close)
                await asyncio.to_thread(dead_letters.close)
                await asyncio.to_thread(binding_dead_letters.close)

    app = create_service_app(
        service=SERVICE,
        version="0.1.0",
        lifespan=lifespan,
        readiness={
            "database": database_ready,
            "broker": broker_ready,
            "consents": consents_ready,
            "bindings": bindings_ready,
            "decisions": decisions_ready,
        }
        | ({"mqtt": mqtt_ready} if settings.mqtt_url else {}),
        description="Devices bound to wallets, and signed sensor readings (HTTP, MQTT) checked and published "
        "to Kafka.",
        retry_after_s=settings.retry_after_s,
    )
    app.include_router(router)
    app.include_router(decisions_router)
    app.include_router(erasures_router)
    return app
