"""The portal (port 8106): the city's pages, and the impact figures it folds from the k-anonymous zone
statistics (no device, wallet or person). Its other paths pass a page's calls on to the services (``/api/<service>
/v1/...``): an app calls the services themselves, with their clients.

Every call is a GET, so idempotent: retried when no answer came (`smartcity_sdk.http`).
"""

from __future__ import annotations

from smartcity_sdk.http import ServiceClient, operation
from smartcity_sdk.types import ZoneImpact


class PortalClient(ServiceClient):
    """A client of the portal (``PortalClient("http://127.0.0.1:8106")``)."""

    @operation("GET", "/v1/impact/zones")
    def impact_zones(self, months: int = 12) -> ZoneImpact:
        """Per zone and month, for the last `months` months up to the current one: kg CO2e avoided (None until a
        published policy gives the emission factors), kWh saved, kg recycled, km and trips; the same per month
        and in all, and what became of the statistics' windows."""
        return self.call("GET", "/v1/impact/zones", idempotent=True, params={"months": months}).json()
