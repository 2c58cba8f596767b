"""The few ledger calls identity makes for custodial wallets, over the ledger's public HTTP API.

Identity never reads the ledger's tables (each service owns its database): it submits the transfers it signed
for a holder to ``POST /v1/transfers`` and reads balances and transactions as any wallet app would, by signed
read (`services.common.signed_reads`): as the holder, with the key their PIN opened, at a kiosk; as itself, a
balance reader of the ledger (``LEDGER_BALANCE_READERS``), to resolve a notice's aid_zone group. The ledger
decides; its answers come back as `services.identity.service_client` says.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.identity.service_client import ServiceAnswer, ServiceClient


class LedgerClient(ServiceClient):
    """An HTTP client of one ledger, opened for the app's lifetime (its connections are pooled)."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        super().__init__("ledger", base_url, timeout_s)

    async def transfer(self, signed: dict[str, Any]) -> ServiceAnswer:
        """Submit a signed transfer: 201 with the receipt, or 200 with the original one on a retry."""
        return await self._call("POST", "/v1/transfers", json=signed)

    async def anchor(self, signed: dict[str, Any]) -> str:
        """Put a signed anchor on the chain (``POST /v1/anchors``); its transaction id."""
        return (await self._call("POST", "/v1/anchors", json=signed)).body["tx_id"]

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
