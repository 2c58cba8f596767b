"""The identity service: DID resolution now; credentials, consent and notices come later."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common import db
from services.common.http import create_app as create_service_app
from services.common.http import database_ready
from services.common.settings import PlatformSettings
from services.identity.api.routes import router
from services.identity.settings import SERVICE


def create_app(platform: PlatformSettings | None = None) -> FastAPI:
    platform = platform or PlatformSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = await db.prepare_database(platform, SERVICE)
        app.state.engine = db.create_engine(url, pool_size=5)
        yield
        await app.state.engine.dispose()

    app = create_service_app(
        service=SERVICE,
        version="0.1.0",
        lifespan=lifespan,
        readiness={"database": database_ready},
        description="Sovereign identities (did:key), credentials, consent and notices.",
    )
    app.include_router(router)
    return app
