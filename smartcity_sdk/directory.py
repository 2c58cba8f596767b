"""The directory (port 8105): local businesses, searched local first.

Every call is idempotent, so retried when no answer came (`smartcity_sdk.http`): the reads, and a merchant's
registration, a signed object (the same one again is answered with the merchant as it stands).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from smartcity_sdk.http import ServiceClient
from smartcity_sdk.signing import Keypair
from smartcity_sdk.timestamps import now_rfc3339
from smartcity_sdk.types import Categories, Merchant, MerchantPage, SearchResults


class DirectoryClient(ServiceClient):
    """A client of the directory (``DirectoryClient("http://127.0.0.1:8105")``)."""

    def search(
        self,
        q: str | None = None,
        *,
        lat: float | None = None,
        lon: float | None = None,
        radius_km: float | None = None,
        category: str | None = None,
        accepts: str | None = None,
        open_now: bool = False,
        at: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> SearchResults:
        """Merchants matching `q` (typos forgiven) near (`lat`, `lon`), locally owned ones first, each with its
        distance, whether it is open (at `at`, RFC 3339, default now) and the parts of its score."""
        params = {
            "q": q,
            "lat": lat,
            "lon": lon,
            "radius_km": radius_km,
            "category": category,
            "accepts": accepts,
            "open_now": open_now or None,
            "at": at,
            "limit": limit,
            "offset": offset,
        }
        return self.call("GET", "/v1/search", idempotent=True, params=params).json()

    def merchants(
        self, *, category: str | None = None, limit: int | None = None, offset: int = 0
    ) -> MerchantPage:
        """Merchants by name, optionally of one category, a page at a time."""
        params = {"category": category, "limit": limit, "offset": offset}
        return self.call("GET", "/v1/merchants", idempotent=True, params=params).json()

    def merchant(self, wallet: str) -> Merchant:
        """The merchant of `wallet`; a 404 `ProblemError` if none is registered."""
        return self.call("GET", f"/v1/merchants/{quote(wallet, safe=':')}", idempotent=True).json()

    def categories(self) -> Categories:
        """The merchant categories and what each covers."""
        return self.call("GET", "/v1/categories", idempotent=True).json()

    def alternatives(
        self,
        to: str,
        *,
        lat: float | None = None,
        lon: float | None = None,
        radius_km: float | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Nearby locally owned merchants for what one would otherwise buy from the chain, category or product
        `to`."""
        params = {"to": to, "lat": lat, "lon": lon, "radius_km": radius_km, "limit": limit}
        return self.call("GET", "/v1/alternatives", idempotent=True, params=params).json()

    def register_merchant(
        self,
        wallet: Keypair,
        *,
        name: str,
        category: str,
        locally_owned: bool,
        accepts: list[str],
        **facts: Any,
    ) -> Merchant:
        """Register (or update) the merchant of `wallet`, signed by it; `facts` are the optional ones
        (``address``, ``lat``, ``lon``, ``description``, ``chain``, ``hours``, ``active``). Its category and
        local ownership are the owner's claims until the city verifies them (a key of the directory role)."""
        registration = {
            "wallet": wallet.did,
            "name": name,
            "category": category,
            "locally_owned": locally_owned,
            "accepts": accepts,
            "issued_at": now_rfc3339(),
            **facts,
        }
        body = wallet.sign(registration)
        return self.call("POST", "/v1/merchants", idempotent=True, json=body).json()
