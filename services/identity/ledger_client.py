"""The few ledger calls identity makes for custodial wallets, over the ledger's public HTTP API.

Identity never reads the ledger's tables (each service owns its database): it submits the transfers it signed
for a holder to ``POST /v1/transfers`` and reads balances and transactions as any wallet app would, by signed
read (`services.common.signed_reads`): as the holder, with the key their PIN opened, at a kiosk; as itself, a
balance reader of the ledger (``LEDGER_BALANCE_READERS``), to resolve a notice's aid_zone group. The ledger
decides; its answers come back as three outcomes: a JSON answer, a refusal (a 4xx problem, which the caller
passes on) or `LedgerUnavailableError` (no answer, or a 5xx: worth retrying).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair


class LedgerUnavailableError(RuntimeError):
    """The ledger did not answer, or answered a 5xx: nothing is known to have happened; retry."""


@dataclass(frozen=True)
class LedgerAnswer:
    """A 2xx answer of the ledger: its status and JSON body."""

    status: int
    body: dict[str, Any]


class LedgerRefusedError(Exception):
    """The ledger refused the call (4xx): `problem` is its problem JSON, kept to be passed on."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('type')}: {problem.get('detail')}")
        self.status = status
        self.problem = problem


class LedgerClient:
    """An HTTP client of one ledger, opened for the app's lifetime (its connections are pooled)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_s)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def transfer(self, signed: dict[str, Any]) -> LedgerAnswer:
        """Submit a signed transfer: 201 with the receipt, or 200 with the original one on a retry."""
        return await self._call("POST", "/v1/transfers", json=signed)

    async def anchor(self, signed: dict[str, Any]) -> str:
        """Put a signed anchor on the chain (``POST /v1/anchors``); its transaction id."""
        return (await self._call("POST", "/v1/anchors", json=signed)).body["tx_id"]

    async def erase(self, signed: dict[str, Any]) -> LedgerAnswer:
        """Forward a person's signed erasure request (`services.common.erasure`): 201 with what was erased, or
        200 with the original answer on a retry. Ingest answers ``POST /v1/erasures`` the same way, so
        identity forwards it there with a client of this class too."""
        return await self._call("POST", "/v1/erasures", json=signed)

    async def account(self, wallet: str, reader: Keypair) -> dict[str, Any]:
        """``{"wallet", "balances": {currency: micro-units}}``, read by `reader` (the holder, or a key the ledger
        lets read balances)."""
        path = f"/v1/accounts/{quote(wallet, safe=':')}"
        return (await self._call("GET", path, auth=SignedReadAuth(reader))).body

    async def transactions(self, wallet: str, limit: int, reader: Keypair) -> dict[str, Any]:
        """The wallet's latest `limit` transactions, newest first: ``{"transactions", "next_before"}``, read by
        `reader` (the holder)."""
        path = f"/v1/accounts/{quote(wallet, safe=':')}/transactions"
        return (await self._call("GET", path, params={"limit": limit}, auth=SignedReadAuth(reader))).body

    async def _call(self, method: str, path: str, **kwargs: Any) -> LedgerAnswer:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise LedgerUnavailableError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code >= 500:
            raise LedgerUnavailableError(f"the ledger answered {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if 400 <= response.status_code < 500:
                # Not the ledger's own problem JSON (a proxy's page, say): still a refusal, named as such.
                body = {"detail": f"The ledger refused the call ({response.status_code})."}
            else:
                raise LedgerUnavailableError(f"the ledger answered {response.status_code} without JSON")
        if response.status_code >= 400:
            raise LedgerRefusedError(response.status_code, body)
        if not 200 <= response.status_code < 300:
            raise LedgerUnavailableError(f"the ledger answered {response.status_code}")
        return LedgerAnswer(response.status_code, body)
