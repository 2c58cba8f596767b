"""The impact page's zone figures, served by the portal itself: ``GET /v1/impact/zones?months=N``.

The portal follows ``city.zone-stats.v1`` as the analysts do (the one topic of per-zone figures the public may
see, k-anonymous), from the beginning, so a restarted portal folds again what the topic still holds: the
figures reach as far back as the topic's retention. It reads every partition itself (`TopicView`: assigned,
no group joined, nothing committed), under a client id of the analysts' consumer group prefix
(``PORTAL_IMPACT_CLIENT_ID``); where ACLs are enforced the portal runs with the ``analyst`` principal's Kafka
credentials, which may read this topic and nothing personal.

The kg CO2e figures use the emission factors of the reward policy in force, as published on the chain: the
rewards worker names its policy's hash (``/readyz``), and the ledger serves the document it holds under that
hash (``GET /v1/policies/{hash}``), which is checked to hash to it. Until one is known, kg CO2e is null.

Zone statistics carry no attestation; the page's figures are as good as the topic's writer (the rewards
service, alone allowed to write it by the ACLs). They move no money.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from confluent_kafka import KafkaException
from fastapi import APIRouter, FastAPI, Query, Request
from prometheus_client import Counter, Gauge

from services.common import schemas
from services.common.events import decode_json
from services.common.follower import TopicView
from services.common.months import MAX_REPORT_MONTHS, last_months
from services.common.policy import PolicyError, parse_policy
from services.common.settings import PlatformSettings
from services.common.topics import ZONE_STATS
from services.portal.impact import EmissionFactors, ZoneImpact, ZoneStatsFold, zone_impact
from services.portal.settings import PortalSettings

log = logging.getLogger(__name__)

IMPACT_VIEW_AGE = Gauge(
    "smartcity_portal_impact_view_age_seconds",
    "Seconds since the portal's zone statistics view last heard from the broker.",
    ["client"],
)
IMPACT_WINDOWS = Counter(
    "smartcity_portal_impact_windows_total",
    "city.zone-stats.v1 records folded for the impact page, by outcome: counted, duplicate (published again), "
    "suppressed (fewer than k devices: nothing to count), too-old (behind the dedupe horizon), refused (not a "
    "zone statistic), failed (the fold raised: a bug).",
    ["client", "outcome"],
)

router = APIRouter(prefix="/v1/impact", tags=["impact"])


class ZoneStatsView(TopicView):
    """``city.zone-stats.v1`` folded into a `ZoneStatsFold` on the view's thread; `impact` reads it."""

    def __init__(self, bootstrap_servers: str, *, client_id: str, horizon_s: int) -> None:
        self._windows = ZoneStatsFold(horizon_s)
        self._lock = threading.Lock()  # the fold runs on the view's thread, answers on the event loop
        super().__init__(
            bootstrap_servers,
            ZONE_STATS,
            client_id=client_id,
            age_gauge=IMPACT_VIEW_AGE,
            records=IMPACT_WINDOWS,
        )

    def _fold(self, raw: bytes | None) -> tuple[str, str | None]:
        try:
            value = decode_json(raw)
            schemas.validate(ZONE_STATS, value)
        except (ValueError, schemas.SchemaError) as exc:
            # Logged and counted; no DLQ: the analysts' principal writes nothing, and the record stays on its topic.
            return "refused", f"not a zone statistic: {exc}"
        with self._lock:
            return self._windows.add(value), None

    def impact(self, months: list[str], factors: EmissionFactors | None) -> ZoneImpact:
        with self._lock:
            return zone_impact(self._windows, months, factors, caught_up=self.ready)


class PublishedPolicy:
    """The emission factors of the reward policy in force, from the chain's copy of its document."""

    def __init__(self, http: httpx.AsyncClient, rewards_url: str, ledger_url: str) -> None:
        self._http = http
        self._rewards_url = rewards_url.rstrip("/")
        self._ledger_url = ledger_url.rstrip("/")
        self.factors: EmissionFactors | None = None
        self._problem: str | None = None  # the last one logged: it is asked again every second while it lasts

    async def refresh(self) -> None:
        """Ask which policy is in force and, if it changed, fetch its document from the ledger. A service that
        does not answer leaves the factors known so far."""
        try:
            # Its readiness answer (200 or 503) names the policy in force, by version and hash.
            in_force = (await self._http.get(f"{self._rewards_url}/readyz")).json().get("policy_hash")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            self._note(f"the reward policy in force is not known: {type(exc).__name__}: {exc}")
            return
        if not isinstance(in_force, str) or (self.factors and self.factors.policy.hash == in_force):
            return
        try:
            answer = await self._http.get(f"{self._ledger_url}/v1/policies/{in_force}")
            if answer.status_code != 200:
                self._note(f"policy {in_force} is not on the chain yet ({answer.status_code})")
                return
            policy = parse_policy(answer.json(), f"policy {in_force} on the chain")
        except (httpx.HTTPError, ValueError, PolicyError) as exc:
            self._note(f"policy {in_force} could not be read from the ledger: {type(exc).__name__}: {exc}")
            return
        if policy.hash != in_force:
            self._note(f"the ledger served a document hashing to {policy.hash} for policy {in_force}")
            return
        self.factors = EmissionFactors.of(policy)
        self._problem = None
        log.info("impact figures use the emission factors of policy %s (%s)", policy.version, policy.hash)

    def _note(self, problem: str) -> None:
        if problem != self._problem:
            log.warning("impact page: %s", problem)
            self._problem = problem


class ImpactFeed:
    """The zone statistics view and the policy in force, kept up by `run`."""

    def __init__(self, view: ZoneStatsView, policy: PublishedPolicy, settings: PortalSettings) -> None:
        self.view = view
        self.policy = policy
        self.settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Start the view (again and again until the broker answers: the pages serve meanwhile) and refresh the
        policy, until `stop` is set."""
        started = False
        while not stop.is_set():
            if not started:
                try:
                    await asyncio.to_thread(self.view.start, self.settings.impact_start_timeout_s)
                    started = True
                except KafkaException as exc:
                    log.warning("zone statistics not followed yet (the impact page shows none): %s", exc)
            try:
                await self.policy.refresh()
            except Exception:  # a bug there must not stop the zone figures' feed, nor its next try
                log.exception("impact page: the policy in force could not be refreshed")
            # Soon again while something is missing (the platform is starting), then at the refresh interval.
            wait_s = self.settings.impact_policy_refresh_s if started and self.policy.factors else 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait_s)

    def answer(self, months: int, now: datetime) -> ZoneImpact:
        return self.view.impact(last_months(now, months), self.policy.factors)


@asynccontextmanager
async def impact_feed(
    app: FastAPI, settings: PortalSettings, platform: PlatformSettings, http: httpx.AsyncClient
) -> AsyncIterator[None]:
    """The lifespan part of the impact figures: ``app.state.impact``, fed until the app stops."""
    view = ZoneStatsView(
        platform.bootstrap_servers, client_id=settings.impact_client_id, horizon_s=settings.impact_horizon_s
    )
    app.state.impact = feed = ImpactFeed(
        view, PublishedPolicy(http, settings.rewards_url, settings.ledger_url), settings
    )
    stop = asyncio.Event()
    running = asyncio.create_task(feed.run(stop), name="portal-impact")
    try:
        yield
    finally:
        # Wait out a start in progress rather than cancel it: its thread still uses the consumer.
        stop.set()
        await running
        await asyncio.to_thread(view.close)


@router.get(
    "/zones",
    summary="Per zone and month: kg CO2e avoided, kWh saved, kg recycled and trips, from the k-anonymous zone "
    "statistics (no device, wallet or person)",
)
async def zones(
    request: Request,
    months: int = Query(
        12, ge=1, le=MAX_REPORT_MONTHS, description="How many months, up to the current one."
    ),
) -> ZoneImpact:
    feed: ImpactFeed = request.app.state.impact
    return feed.answer(months, datetime.now(UTC))
