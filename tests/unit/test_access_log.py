"""Access logs with request ids (`services.common.http`): the caller's X-Request-ID is answered back, one is made
when it is missing or unusable, every request logs one structured line without its query string, and what a
request logs on the way carries its id."""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from fastapi import FastAPI, Request
from prometheus_client import REGISTRY

from services.common.http import create_app, log_access
from services.common.logs import RequestIdFilter
from services.directory.app import create_app as create_directory_app

CLIENT = ("203.0.113.7", 50123)


def _client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=CLIENT, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "smartcity.access"]


async def test_the_callers_request_id_is_answered_and_logged_with_the_request_but_not_its_query(
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO, logger="smartcity.access")
    async with _client(create_directory_app()) as client:
        response = await client.get(
            "/v1/categories",
            params={"q": "Jane Doe", "near": "51.5,-0.1"},
            headers={"X-Request-ID": "abc-123"},
        )

    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-123"
    (line,) = _access_lines(caplog)
    assert line.levelno == logging.INFO
    assert (line.method, line.path, line.status, line.request_id, line.client) == (
        "GET",
        "/v1/categories",
        200,
        "abc-123",
        "203.0.113.7",
    )
    assert isinstance(line.duration_ms, float) and line.duration_ms >= 0
    everything = line.getMessage() + repr(vars(line))
    for secret in ("Jane", "Doe", "51.5", "near", "?"):
        assert secret not in everything


def test_a_path_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO, logger="smartcity.access")
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/x\nGET /forged 200",
        "query_string": b"",
        "headers": [],
    }
    log_access(Request(scope), 404, 0.001, "req-1")

    (line,) = _access_lines(caplog)
    assert line.path == "/v1/x%0AGET%20/forged%20200"
    assert "\n" not in line.getMessage()


@pytest.mark.parametrize("sent", [None, "", "two words", "x" * 129, '"quoted"'])
async def test_a_missing_or_unusable_request_id_is_replaced_by_a_new_one(
    caplog: pytest.LogCaptureFixture, sent: str | None
):
    caplog.set_level(logging.INFO, logger="smartcity.access")
    headers = {} if sent is None else {"X-Request-ID": sent}
    async with _client(create_directory_app()) as client:
        first = await client.get("/v1/categories", headers=headers)
        second = await client.get("/v1/categories", headers=headers)

    made = first.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert second.headers["X-Request-ID"] != made  # one per request
    assert [line.request_id for line in _access_lines(caplog)] == [made, second.headers["X-Request-ID"]]


async def test_probes_log_at_debug_and_an_unexpected_error_is_logged_and_counted_as_a_500(
    caplog: pytest.LogCaptureFixture,
):
    app = create_app(service="access-test", version="0")
    caplog.handler.addFilter(RequestIdFilter())  # as `configure_logging` installs it

    @app.get("/boom")
    async def boom() -> None:
        logging.getLogger("access-test").warning("about to fail")
        raise RuntimeError("a bug")

    caplog.set_level(logging.DEBUG, logger="smartcity.access")
    async with _client(app) as client:
        probe = await client.get("/healthz")
        failed = await client.get("/boom", headers={"X-Request-ID": "req-7"})

    assert probe.status_code == 200 and failed.status_code == 500
    healthz, boom_line = _access_lines(caplog)
    assert (healthz.levelno, healthz.path, healthz.status) == (logging.DEBUG, "/healthz", 200)
    assert (boom_line.levelno, boom_line.path, boom_line.status, boom_line.request_id) == (
        logging.INFO,
        "/boom",
        500,
        "req-7",
    )
    assert failed.headers["X-Request-ID"] == "req-7"  # what the caller reports, to find the lines below
    (inside,) = [record for record in caplog.records if record.getMessage() == "about to fail"]
    assert inside.request_id == "req-7"  # what a request logs on the way carries its id
    (error,) = [record for record in caplog.records if record.getMessage().startswith("unhandled error")]
    assert error.request_id == "req-7" and error.exc_info is not None
    counted = {"service": "access-test", "method": "GET", "route": "/boom", "status": "500"}
    assert REGISTRY.get_sample_value("smartcity_http_requests_total", counted) == 1
