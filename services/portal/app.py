"""The portal app: its pages (`static/`), their API calls passed on to the services (`proxy`), and the impact
page's zone figures, which the portal folds itself from the analysts' topic (`impact_feed`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from services.common.http import create_app as create_service_app
from services.common.lag import LagMonitor
from services.common.settings import PlatformSettings
from services.portal.impact_feed import impact_feed
from services.portal.impact_feed import router as impact_router
from services.portal.proxy import router
from services.portal.settings import SERVICE, PortalSettings

STATIC = Path(__file__).parent / "static"

SECURITY_HEADERS = {
    # Scripts and styles come from the portal's own files only: no inline script can run, so text a page
    # shows (a merchant's name, a notice) can never become code.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The kiosk runs on a shared screen: nothing of a person's session may be kept by the browser's cache.
    "Cache-Control": "no-store",
}


def create_app(settings: PortalSettings | None = None, platform: PlatformSettings | None = None) -> FastAPI:
    """The portal app; its lifespan opens the HTTP client the proxy passes calls on with, and follows the zone
    statistics of the impact page (on `platform`'s broker)."""
    settings = settings or PortalSettings()
    platform = platform or PlatformSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.upstream_timeout_s) as http:
            app.state.settings = settings
            app.state.upstreams = settings.upstreams()
            app.state.http = http
            async with impact_feed(app, settings, platform, http):
                # smartcity_consumer_lag of the impact page's view, sampled on a thread of its own.
                lag = LagMonitor(platform.bootstrap_servers, views=[app.state.impact.view])
                lag.start()
                try:
                    yield
                finally:
                    await asyncio.to_thread(lag.close)

    app = create_service_app(
        service=SERVICE,
        version="0.1.0",
        lifespan=lifespan,
        description="The platform's web pages (explorer, wallet, kiosk, impact, directory), and their API "
        "calls passed on to the services under /api/<service>/v1/...",
    )

    @app.middleware("http")
    async def _security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.include_router(router)
    app.include_router(impact_router)
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="pages")
    return app
