"""Identity's HTTP client of another platform service (the ledger, ingest), over its public API.

Identity never reads another service's tables (each service owns its database): it calls its HTTP API as any
client would. Each answer comes back as one of three outcomes: a JSON answer (`ServiceAnswer`), a refusal (a
4xx problem, `ServiceRefusedError`, which the caller passes on) or `ServiceUnavailableError` (no answer, or a
5xx: worth retrying).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


class ServiceUnavailableError(RuntimeError):
    """The service did not answer, or answered a 5xx: nothing is known to have happened; retry."""


@dataclass(frozen=True)
class ServiceAnswer:
    """A 2xx answer of the service: its status and JSON body."""

    status: int
    body: dict[str, Any]


class ServiceRefusedError(Exception):
    """The service refused the call (4xx): `problem` is its problem JSON, kept to be passed on."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('type')}: {problem.get('detail')}")
        self.status = status
        self.problem = problem


class ServiceClient:
    """An HTTP client of one service (`name`, as errors call it), opened for the app's lifetime (its
    connections are pooled)."""

    def __init__(self, name: str, base_url: str, timeout_s: float) -> None:
        self.name = name
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def erase(self, signed: dict[str, Any]) -> ServiceAnswer:
        """Forward a person's signed erasure request (`services.common.erasure`): 201 with what was erased, or
        200 with the original answer on a retry (ingest and the ledger answer ``POST /v1/erasures`` alike)."""
        return await self._call("POST", "/v1/erasures", json=signed)

    async def _call(self, method: str, path: str, **kwargs: Any) -> ServiceAnswer:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise ServiceUnavailableError(f"the {self.name} answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if 400 <= response.status_code < 500:
                # Not the service's own problem JSON (a proxy's page, say): still a refusal, named as such.
                body = {"detail": f"The {self.name} refused the call ({response.status_code})."}
            else:
                raise ServiceUnavailableError(f"the {self.name} answered {response.status_code} without JSON")
        if response.status_code >= 400:
            raise ServiceRefusedError(response.status_code, body)
        if not 200 <= response.status_code < 300:
            raise ServiceUnavailableError(f"the {self.name} answered {response.status_code}")
        return ServiceAnswer(response.status_code, body)
