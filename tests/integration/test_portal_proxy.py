"""The portal passes its pages' calls on to a real service (ingest, on the real broker and PostgreSQL) and
nothing more: a signed read verifies only when signed for the service's own path, an oversized body is refused
before it reaches the service, an unknown service or a non-API path is a 404, a service that does not answer is
a 502 problem; the good call beside each still answers."""

from __future__ import annotations

import pytest

from services.common.embedded import free_port
from services.common.settings import PlatformSettings
from services.common.signed_reads import sign_headers
from services.common.signing import Keypair
from services.ingest.app import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.portal.app import create_app as create_portal
from services.portal.settings import PortalSettings
from tests.support.asgi import assert_problem, running, served
from tests.support.topics import unique_group

pytestmark = pytest.mark.integration


async def test_the_portal_passes_calls_on_and_nothing_more(platform_settings: PlatformSettings) -> None:
    ingest = create_ingest(platform_settings, IngestSettings(decisions_group=unique_group("ingest-proxy")))
    reader = Keypair.generate()
    async with ingest.router.lifespan_context(ingest), served(ingest) as ingest_url:
        nobody = f"http://127.0.0.1:{free_port()}"
        settings = PortalSettings(ingest_url=ingest_url, ledger_url=nobody, max_body_bytes=4096)
        async with running(create_portal(settings, platform_settings)) as portal:
            # A read signed for the path the service sees passes; the same signature over the portal's path does not.
            own = sign_headers(reader, "GET", "http://ingest/v1/devices")
            answer = await portal.get("/api/ingest/v1/devices", headers=own)
            assert answer.status_code == 200, answer.text
            assert_problem(await portal.get("/api/ingest/v1/devices"), 401)
            portal_path = sign_headers(reader, "GET", "http://portal/api/ingest/v1/devices")
            assert_problem(await portal.get("/api/ingest/v1/devices", headers=portal_path), 401)

            # An oversized body never reaches the service; a malformed one gets the service's own 4xx.
            big = b'{"readings": [' + b" " * 5000 + b"]}"
            headers = {"content-type": "application/json"}
            assert_problem(await portal.post("/api/ingest/v1/readings", content=big, headers=headers), 413)
            malformed = await portal.post("/api/ingest/v1/readings", content=b"{not json", headers=headers)
            assert 400 <= malformed.status_code < 500
            assert malformed.headers["content-type"].startswith("application/problem+json")

            # Only the five services' /v1 APIs are behind it; a service away is a 502 problem.
            assert_problem(await portal.get("/api/postgres/v1/anything"), 404)
            assert (await portal.get("/api/ingest/metrics")).status_code == 404
            assert_problem(await portal.get("/api/ledger/v1/checkpoint"), 502)

            # The good call beside them still answers.
            again = await portal.get(
                "/api/ingest/v1/devices", headers=sign_headers(reader, "GET", "http://ingest/v1/devices")
            )
            assert again.status_code == 200, again.text
