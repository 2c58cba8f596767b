"""The directory (port 8105): local businesses, searched local first, and the city's verification of a
merchant's facts by a key of its directory role (``DIRECTORY_VERIFIER_KEYS``).

Idempotent, so retried when no answer came (`smartcity_sdk.http`): the reads, and a merchant's registration, a
signed object (the same one again is answered with the merchant as it stands). Not: a verification (the same
one again is answered 409 ``stale-verification``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from smartcity_sdk.http import ServiceClient, operation
from smartcity_sdk.jcs import canonical_bytes
from smartcity_sdk.signing import Keypair
from smartcity_sdk.timestamps import now_rfc3339
from smartcity_sdk.types import Alternatives, Categories, Merchant, MerchantPage, SearchResults


def registration_hash(registration: Mapping[str, Any]) -> str:
    """How a verification names the registration it checked: SHA-256 (hex) of the JCS bytes of the signed
    registration, its signature included."""
    return hashlib.sha256(canonical_bytes(dict(registration))).hexdigest()


def sign_verification(
    verifier: Keypair,
    registration: Mapping[str, Any],
    *,
    category: str,
    locally_owned: bool,
    verified_at: str | None = None,
) -> dict[str, Any]:
    """The body of ``POST /v1/merchants/{wallet}/verification``: the city's findings of the merchant whose
    signed `registration` it checked, signed by `verifier`, at `verified_at` (RFC 3339, default now)."""
    verification = {
        "merchant": registration["wallet"],
        "registration": registration_hash(registration),
        "category": category,
        "locally_owned": locally_owned,
        "verified_at": verified_at or now_rfc3339(),
        "verifier": verifier.did,
    }
    return verifier.sign(verification)


class DirectoryClient(ServiceClient):
    """A client of the directory (``DirectoryClient("http://127.0.0.1:8105")``)."""

    @operation("GET", "/v1/search")
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

    @operation("GET", "/v1/merchants")
    def merchants(
        self, *, category: str | None = None, limit: int | None = None, offset: int = 0
    ) -> MerchantPage:
        """Merchants by name, optionally of one category, a page at a time."""
        params = {"category": category, "limit": limit, "offset": offset}
        return self.call("GET", "/v1/merchants", idempotent=True, params=params).json()

    @operation("GET", "/v1/merchants/{wallet}")
    def merchant(self, wallet: str) -> Merchant:
        """The merchant of `wallet`; a 404 `ProblemError` if none is registered."""
        return self.call("GET", f"/v1/merchants/{quote(wallet, safe=':')}", idempotent=True).json()

    @operation("GET", "/v1/categories")
    def categories(self) -> Categories:
        """The merchant categories and what each covers."""
        return self.call("GET", "/v1/categories", idempotent=True).json()

    @operation("GET", "/v1/alternatives")
    def alternatives(
        self,
        to: str,
        *,
        lat: float | None = None,
        lon: float | None = None,
        radius_km: float | None = None,
        limit: int | None = None,
    ) -> Alternatives:
        """Nearby locally owned merchants for what one would otherwise buy from the chain, category or product
        `to`."""
        params = {"to": to, "lat": lat, "lon": lon, "radius_km": radius_km, "limit": limit}
        return self.call("GET", "/v1/alternatives", idempotent=True, params=params).json()

    @operation("POST", "/v1/merchants")
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

    @operation("POST", "/v1/merchants/{wallet}/verification")
    def verify_merchant(
        self,
        verifier: Keypair,
        registration: Mapping[str, Any],
        *,
        category: str,
        locally_owned: bool,
        verified_at: str | None = None,
    ) -> Merchant:
        """The city's verification of a merchant (`sign_verification`): its `category` and whether it is
        `locally_owned` as the city found them, for the signed `registration` it checked (the merchant's
        ``registration``, as `merchant` answers it: a newer registration is not covered). Directory role only
        (``DIRECTORY_VERIFIER_KEYS``)."""
        body = sign_verification(
            verifier, registration, category=category, locally_owned=locally_owned, verified_at=verified_at
        )
        path = f"/v1/merchants/{quote(body['merchant'], safe=':')}/verification"
        return self.call("POST", path, idempotent=False, json=body).json()
