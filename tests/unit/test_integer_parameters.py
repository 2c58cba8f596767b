"""Every integer parameter of every HTTP API is bounded: 2**64 (or -1 where only naturals make sense) is a 422
problem, answered before any handler runs, never a 500 (an overflow in the database) nor a 503."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from services.common.settings import PlatformSettings
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.directory.app import create_app as directory_app
from services.identity.app import create_app as identity_app
from services.ingest.app import create_app as ingest_app
from services.ledger.app import create_app as ledger_app

HUGE = str(2**64)
APPS = {"ingest": ingest_app, "ledger": ledger_app, "identity": identity_app, "directory": directory_app}


def integer_parameters(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, parameter) of every integer query or path parameter in the app's OpenAPI document."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                types = {schema.get("type")} | {s.get("type") for s in schema.get("anyOf", [])}
                if "integer" in types:
                    found.append((method, path, parameter))
    return found


def filled(path: str, huge: str | None) -> str:
    """`path` with the path parameter `huge` set to 2**64 and any other one to some text."""
    return re.sub(r"\{([^}]+)\}", lambda m: HUGE if m[1] == huge else "1", path)


@pytest.mark.parametrize("service", sorted(APPS))
async def test_an_integer_beyond_every_bound_is_a_422_before_any_handler_runs(service: str) -> None:
    # No lifespan: a handler that ran would find no database and answer 500, which fails the test. The store
    # dependencies resolve to an object that can do nothing.
    app = APPS[service](PlatformSettings())
    app.state.store = object()
    parameters = integer_parameters(app)
    if service in ("ledger", "ingest", "directory"):
        assert parameters, "the API has integer parameters to check"
    # Signed: reads of personal data check the signature first (a 401 without one); any key's passes that.
    reader = SignedReadAuth(Keypair.generate())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test", auth=reader
    ) as client:
        for method, path, parameter in parameters:
            inside = parameter["in"] == "path"
            url = filled(path, parameter["name"] if inside else None)
            params = {} if inside else {parameter["name"]: HUGE}
            response = await client.request(method.upper(), url, params=params)
            assert response.status_code == 422, (method, path, parameter["name"], response.text)
            assert response.headers["content-type"] == "application/problem+json"
