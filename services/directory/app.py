"""The directory service: local merchants (registered by their owners, verified by the city), published to
``city.merchants.v1``, and the local-first search."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.http import broker_ready, database_and_producer, database_ready
from services.common.http import create_app as create_service_app
from services.common.roles import Role, service_key
from services.common.settings import PlatformSettings
from services.directory.api.routes import router
from services.directory.publishing import MerchantPublisher
from services.directory.settings import SERVICE, DirectorySettings
from services.directory.store import MerchantStore


def create_app(
    platform: PlatformSettings | None = None, settings: DirectorySettings | None = None
) -> FastAPI:
    """The directory app; its lifespan migrates the database and opens the producer."""
    platform = platform or PlatformSettings()
    settings = settings or DirectorySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with database_and_producer(app, platform, SERVICE, pool_size=5):
            app.state.settings = settings
            app.state.store = MerchantStore(app.state.engine, settings.typo_similarity)
            app.state.publisher = MerchantPublisher(
                app.state.producer,
                service_key(settings.publisher_key, platform.data_dir, Role.MERCHANT_VERIFIER),
            )
            yield

    app = create_service_app(
        service=SERVICE,
        version="0.1.0",
        lifespan=lifespan,
        readiness={"database": database_ready, "broker": broker_ready},
        description="Local businesses: registered by their wallets, verified by the city, published to "
        "city.merchants.v1; local-first search and local alternatives to chains.",
        retry_after_s=settings.retry_after_s,
    )
    app.include_router(router)
    return app
