"""Running a FastAPI service under uvicorn with the platform's logging."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from services.common.gc_tuning import tune_for_throughput
from services.common.http_server import with_header_timeout
from services.common.logs import configure_logging
from services.common.settings import PlatformSettings


def serve(app: FastAPI, service: str, settings: PlatformSettings, port: int) -> None:
    """Serve `app` on BIND_HOST:`port` until SIGINT/SIGTERM (uvicorn handles both gracefully)."""
    configure_logging(service, settings.log_format, settings.log_level)
    tune_for_throughput()
    uvicorn.run(
        app,
        host=settings.bind_host,
        port=port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        # Closes connections whose request headers are late (slowloris).
        http=with_header_timeout(settings.http_header_timeout_s),
    )
