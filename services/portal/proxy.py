"""The pages' one origin: ``/api/<service>/v1/...`` is passed on to that service's ``/v1/...``.

Hand-written on httpx (already the platform's HTTP client): a gateway for five fixed upstreams and two
methods is a few lines, where a general reverse proxy would bring routing, rewriting and caching rules to
configure and keep safe.

What passes: ``GET`` and ``POST`` under ``/v1/`` only (not a service's metrics or health), the request's query
and body (up to ``max_body_bytes``), and the headers an API call needs (content type, the RFC 9421 signature of
a signed read). A signed read covers the path the service sees: a page signs ``/v1/...``, the path after the
``/api/<service>`` prefix, so the service checks the signature exactly as it would without the portal. Back
come the status, the body and the headers a client acts on (content type, ``Retry-After``). A service that
does not answer is a 502 problem, never a hang.
"""

from __future__ import annotations

import logging

import httpx
from fastapi import APIRouter, Request, Response

from services.common.http import Problem

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", include_in_schema=False)

FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "signature", "signature-input")
FORWARDED_RESPONSE_HEADERS = ("content-type", "retry-after")


@router.api_route("/{service}/v1/{path:path}", methods=["GET", "POST"])
async def pass_on(service: str, request: Request) -> Response:
    upstream = request.app.state.upstreams.get(service)
    if upstream is None:
        raise Problem(404, "not-found", f"no service {service!r} behind the portal")
    body = await request.body()
    if len(body) > request.app.state.settings.max_body_bytes:
        raise Problem(413, "body-too-large", "the request body is larger than the portal passes on")
    headers = {name: value for name in FORWARDED_REQUEST_HEADERS if (value := request.headers.get(name))}
    # The path and query exactly as the page sent them (percent-encoding included): a signed read covers them.
    raw_path = request.scope["raw_path"].decode("latin-1").removeprefix(f"/api/{service}")
    query = request.scope["query_string"].decode("latin-1")
    client: httpx.AsyncClient = request.app.state.http
    try:
        answer = await client.request(
            request.method,
            httpx.URL(f"{upstream}{raw_path}" + (f"?{query}" if query else "")),
            content=body or None,
            headers=headers,
        )
    except httpx.HTTPError as exc:
        log.warning("%s did not answer: %s", service, exc)
        raise Problem(502, "upstream-unavailable", f"{service} did not answer; try again") from exc
    passed = {name: value for name in FORWARDED_RESPONSE_HEADERS if (value := answer.headers.get(name))}
    return Response(content=answer.content, status_code=answer.status_code, headers=passed)
