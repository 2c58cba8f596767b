"""The HTTP conventions every service shares: RFC 9457 problem JSON errors, ``/healthz``,
``/readyz``, ``/metrics`` and request metrics."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Literal
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.common import db, logs
from services.common.kafka import BrokerUnavailableError, KafkaProducer
from services.common.metrics import HTTP_LATENCY, HTTP_REQUESTS, exposition
from services.common.openapi import PROBLEM_BASE, PROBLEM_CONTENT_TYPE, answers, examples
from services.common.openapi import install as install_openapi
from services.common.settings import PlatformSettings

log = logging.getLogger(__name__)

MAX_INT_PARAM = 2**62
"""The largest integer any query or path parameter takes: every one is bounded, so a larger one is a 422, never
an overflow in the database (a 500) nor a failure dressed as a 503."""

RETRY_AFTER_S = 5
"""Retry-After of a 503 of a service that sets none (``<SERVICE>_RETRY_AFTER_S``)."""

ACCESS_LOG = logging.getLogger("smartcity.access")
"""The access log: one line per request (`log_access`)."""
REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
"""What a caller's request id may be: a UUID, a trace id, a short token; no spaces, quotes or newlines."""
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
"""The operations endpoints, asked every few seconds by probes and scrapers: logged at DEBUG."""

ReadinessCheck = Callable[[FastAPI], Awaitable[bool]]
"""A readiness check gets the app, whose ``state`` holds the resources the lifespan opened."""


class Problem(Exception):
    """An error answered as RFC 9457 problem JSON; `kind` names the problem type."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.title = title or kind.replace("-", " ").capitalize()
        self.headers = dict(headers or {})
        self.extensions = extensions


def problem_response(
    status: int,
    kind: str,
    detail: str,
    *,
    title: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind,
        "title": title or kind.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extensions)
    return JSONResponse(
        body, status_code=status, media_type=PROBLEM_CONTENT_TYPE, headers=dict(headers or {})
    )


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if p != "body") or "body"


def install_problem_handlers(app: FastAPI, retry_after_s: int = RETRY_AFTER_S) -> None:
    """Answer every error as problem JSON: 400 malformed JSON, 422 wrong types, 503 with `retry_after_s` when
    the database did not answer (wherever a route met it), never a bare 500."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(
            exc.status,
            exc.kind,
            exc.detail,
            title=exc.title,
            instance=request.url.path,
            headers=exc.headers,
            **exc.extensions,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _field_path(tuple(e.get("loc", ()))), "message": e.get("msg", "")} for e in exc.errors()
        ]
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return problem_response(
                400, "malformed-json", "The request body is not valid JSON.", instance=request.url.path
            )
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        return problem_response(
            422, "invalid-request", detail, title="Invalid request", instance=request.url.path, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        return problem_response(
            exc.status_code, kind, str(exc.detail), instance=request.url.path, headers=exc.headers
        )

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not db.is_unavailable(exc):
            raise exc  # a failure of the statement or its data, not of the database: the 500 below
        return await _problem(request, unavailable(exc, retry_after_s))

    for error in db.ERROR_TYPES:
        app.add_exception_handler(error, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Handled outside the middleware that stamps the request's id: it is named here, and answered.
        request_id = getattr(request.state, "request_id", None)
        log.exception(
            "unhandled error on %s %s", request.method, request.url.path, extra={"request_id": request_id}
        )
        return problem_response(
            500,
            "internal-error",
            "An unexpected error occurred.",
            instance=request.url.path,
            headers={REQUEST_ID_HEADER: request_id} if request_id else None,
        )


class Health(BaseModel):
    """The process is alive."""

    model_config = examples({"status": "ok", "service": "ledger"})
    status: Literal["ok"]
    service: str


class Readiness(BaseModel):
    """Whether each of the service's checks answers (its broker, its database, its workers)."""

    model_config = examples(
        {"status": "ready", "service": "ledger", "checks": {"database": True, "broker": True}},
        {"status": "not-ready", "service": "ledger", "checks": {"database": True, "broker": False}},
    )
    status: Literal["ready", "not-ready"]
    service: str
    checks: dict[str, bool]


def create_app(
    *,
    service: str,
    version: str,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    readiness: Mapping[str, ReadinessCheck] | None = None,
    description: str = "",
    retry_after_s: int = RETRY_AFTER_S,
) -> FastAPI:
    """A FastAPI app with the platform's conventions; `readiness` checks back ``/readyz``; `retry_after_s` is the
    Retry-After of a 503 when the database did not answer."""
    app = FastAPI(title=f"smartcity {service}", version=version, description=description, lifespan=lifespan)
    install_problem_handlers(app, retry_after_s)
    install_openapi(app)
    checks = dict(readiness or {})

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Every request's metrics, its id (`REQUEST_ID_HEADER`, answered back and stamped on what is logged
        while it is handled) and its access log line; one middleware, since each layer costs every request."""
        started = time.perf_counter()
        request.state.request_id = request_id = request_id_of(request.headers.get(REQUEST_ID_HEADER))
        stamped = logs.REQUEST_ID.set(request_id)
        status = 500  # what the client gets if the app raises past every handler
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers[REQUEST_ID_HEADER] = request_id
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(request.scope.get("route"), "path", "unmatched")
            HTTP_LATENCY.labels(service, request.method, route).observe(elapsed)
            HTTP_REQUESTS.labels(service, request.method, route, str(status)).inc()
            log_access(request, status, elapsed, request_id)
            logs.REQUEST_ID.reset(stamped)

    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> Health:
        return Health(status="ok", service=service)

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: the broker and database answer",
        response_model=Readiness,
        responses=answers(Readiness, status=503, description="Not ready: the checks that fail are false"),
    )
    async def readyz(request: Request) -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in checks.items():
            try:
                results[name] = await check(request.app)
            except Exception:
                log.warning("readiness check %s failed", name, exc_info=True)
                results[name] = False
        ready = all(results.values())
        body = {"status": "ready" if ready else "not-ready", "service": service, "checks": results}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        payload, content_type = exposition()
        return Response(payload, media_type=content_type)

    return app


def request_id_of(sent: str | None) -> str:
    """The id of a request: the caller's ``X-Request-ID`` if it is a plausible id (so one id follows a call
    across services and proxies), else a new one. Anything else is replaced, never logged: a header is
    the caller's text, and must not forge or break log lines."""
    if sent is not None and _REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


def log_access(request: Request, status: int, elapsed_s: float, request_id: str) -> None:
    """One structured line per request on ``smartcity.access``: method, path, status, duration, request id
    and client address. Never the query string nor the body: they carry what people search for and send,
    and a signed read's query is covered by its signature. Paths hold ids only (wallet did:keys, which are
    pseudonymous public keys, device, transaction and request ids), percent-encoded again as sent, so that a
    decoded newline cannot forge a line. Probes and scrapes (`QUIET_PATHS`) log at DEBUG, so that they do not
    bury the requests people make."""
    path = quote(request.scope["path"], safe="/:@!$&'()*+,;=~")
    client = request.client.host if request.client else None
    ACCESS_LOG.log(
        logging.DEBUG if path in QUIET_PATHS else logging.INFO,
        "%s %s %d %.1fms id=%s client=%s",
        request.method,
        path,
        status,
        elapsed_s * 1000,
        request_id,
        client,
        extra={
            "method": request.method,
            "path": path,
            "status": status,
            "duration_ms": round(elapsed_s * 1000, 3),
            "request_id": request_id,
            "client": client,
        },
    )


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259) and have no JCS form, so no signed object can hold them.
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e400: beyond a double, it would become Infinity
        raise ValueError(f"{text} is out of range")
    return value


BODY_TIMEOUT_S = 30.0
"""How long a client may take to send a request's body: a body trickled slower is a 408, and its connection is
freed (the headers have their own deadline, `services.common.http_server`)."""


async def read_json_body(request: Request, max_bytes: int, timeout_s: float = BODY_TIMEOUT_S) -> Any:
    """The request body parsed as strict JSON, whatever its content type: a 413 problem past `max_bytes`,
    a 408 problem if it takes longer than `timeout_s` to arrive, a 400 problem if it is not JSON. For routes
    that need the exact object sent (signed objects)."""
    too_large = Problem(413, "body-too-large", f"The request body exceeds {max_bytes} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > max_bytes:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError as exc:
        raise Problem(
            408, "body-timeout", f"The request body did not arrive within {timeout_s:g} s."
        ) from exc
    try:
        return loads_strict(b"".join(chunks))
    except ValueError as exc:
        raise Problem(400, "malformed-json", "The request body is not valid JSON.") from exc


def loads_strict(raw: bytes) -> Any:
    """Parse strict JSON (no NaN or Infinity, no float beyond a double), as any signed object must be;
    raises ValueError (also for bad UTF-8 or nesting too deep)."""
    try:
        return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise ValueError("JSON nested too deep") from exc


@asynccontextmanager
async def database_and_producer(
    app: FastAPI, platform: PlatformSettings, service: str, pool_size: int = 10
) -> AsyncIterator[None]:
    """A service's lifespan resources: its migrated database (``app.state.engine``) and a producer
    (``app.state.producer``), the two the readiness checks below ask; both closed on the way out."""
    url = await db.prepare_database(platform, service)
    app.state.engine = db.create_engine(url, pool_size=pool_size)
    app.state.producer = KafkaProducer(
        platform.bootstrap_servers, client_id=service, send_timeout_s=platform.kafka_send_timeout_s
    )
    try:
        yield
    finally:
        await asyncio.to_thread(app.state.producer.close)
        await app.state.engine.dispose()


async def database_ready(app: FastAPI) -> bool:
    """Readiness: the database behind ``app.state.engine`` answers."""
    async with app.state.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    return True


async def broker_ready(app: FastAPI) -> bool:
    """Readiness: the broker behind ``app.state.producer`` returns metadata."""
    return await asyncio.to_thread(app.state.producer.broker_answers)


def unavailable(exc: Exception, retry_after_s: int | float) -> Problem:
    """A 503 the client may retry, for a broker that did not acknowledge or a database that did not answer."""
    retry = {"Retry-After": str(retry_after_s)}
    if isinstance(exc, BrokerUnavailableError):
        log.warning("broker did not acknowledge: %s", exc)
        return Problem(
            503,
            "broker-unavailable",
            "The broker did not acknowledge; nothing was stored, retry.",
            headers=retry,
        )
    log.warning("database unavailable: %s", exc)
    return Problem(503, "database-unavailable", "The database did not answer; retry.", headers=retry)
