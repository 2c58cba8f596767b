"""Running a FastAPI service under uvicorn with the platform's logging."""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

from services.common import liveness
from services.common.gc_tuning import tune_for_throughput
from services.common.http_server import with_header_timeout
from services.common.logs import configure_logging
from services.common.settings import PlatformSettings


def serve(app: FastAPI, service: str, settings: PlatformSettings, port: int) -> None:
    """Serve `app` on BIND_HOST:`port` until SIGINT/SIGTERM (uvicorn handles both gracefully), or until a
    consumer of the service is stuck: then exit with `liveness.EXIT_STUCK`, to be started again."""
    configure_logging(service, settings.log_format, settings.log_level)
    tune_for_throughput()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.bind_host,
            port=port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=5,
            # Closes connections whose request headers are late (slowloris).
            http=with_header_timeout(settings.http_header_timeout_s),
        )
    )
    # Not SIGTERM: uvicorn re-raises a signal it caught once it has shut down, which would hide the status.
    liveness.exit_when_stuck(lambda: setattr(server, "should_exit", True))
    server.run()
    if code := liveness.exit_code():
        sys.exit(code)
