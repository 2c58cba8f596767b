"""The identity service: did:key identities (self-held or custodial), SD-JWT resident credentials, consent
published to ``city.consents.v1``, a notice inbox and consented service records."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common.http import broker_ready, database_and_producer, database_ready
from services.common.http import create_app as create_service_app
from services.common.sdjwt import Verifier
from services.common.settings import PlatformSettings
from services.identity import keys
from services.identity.anchoring import anchor_forever
from services.identity.api import (
    bindings,
    consents,
    credentials,
    custodial_payments,
    erasures,
    notices,
    pin_resets,
    service_records,
    wallets,
)
from services.identity.custody import KdfCost
from services.identity.erasures import retry_erasures
from services.identity.ledger_client import LedgerClient
from services.identity.service_client import ServiceClient
from services.identity.settings import SERVICE, IdentitySettings
from services.identity.store import IdentityStore


def create_app(platform: PlatformSettings | None = None, settings: IdentitySettings | None = None) -> FastAPI:
    """The identity app; its lifespan migrates the database, loads the keys and opens the producer."""
    platform = platform or PlatformSettings()
    settings = settings or IdentitySettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with database_and_producer(app, platform, SERVICE, pool_size=5):
            app.state.settings = settings
            app.state.city = keys.city_keypair(settings, platform.data_dir)
            app.state.wallet_key = keys.wallet_key(settings, platform.data_dir)
            app.state.kdf_cost = KdfCost(settings.pin_opslimit, settings.pin_memlimit)
            app.state.kdf_slots = asyncio.Semaphore(settings.pin_concurrency)
            app.state.verifier = Verifier(
                [app.state.city.did, *settings.trusted_issuers], kb_max_age_s=settings.kb_max_age_s
            )
            app.state.store = IdentityStore(app.state.engine)
            app.state.ledger = LedgerClient(settings.ledger_url, settings.ledger_timeout_s)
            # Where a person's erasure is forwarded (ingest answers POST /v1/erasures as the ledger does), and the
            # loop forwarding again what a service has not done yet.
            ingest = ServiceClient("ingest", settings.ingest_url, settings.ledger_timeout_s)
            app.state.erasure_services = {"ingest": ingest, "ledger": app.state.ledger}
            app.state.signed_read_skew_s = platform.signed_read_skew_s
            retrying = asyncio.create_task(
                retry_erasures(app.state.store, app.state.erasure_services, settings.erasure_retry_s),
                name="identity-erasures",
            )
            # Every consent receipt is anchored on the chain (`services.identity.anchoring`).
            anchoring = asyncio.create_task(
                anchor_forever(
                    app.state.engine, app.state.city, app.state.ledger.anchor, settings.anchor_interval_s
                ),
                name="identity-anchoring",
            )
            try:
                yield
            finally:
                anchoring.cancel()
                await asyncio.gather(anchoring, return_exceptions=True)
                retrying.cancel()
                await asyncio.gather(retrying, return_exceptions=True)
                await ingest.aclose()
                await app.state.ledger.aclose()

    app = create_service_app(
        service=SERVICE,
        version="0.2.0",
        lifespan=lifespan,
        readiness={"database": database_ready, "broker": broker_ready},
        description="Sovereign identities (did:key), selective-disclosure credentials (SD-JWT), consent, "
        "notices and service records.",
        retry_after_s=settings.retry_after_s,
    )
    for module in (
        wallets,
        pin_resets,
        custodial_payments,
        erasures,
        credentials,
        consents,
        bindings,
        notices,
        service_records,
    ):
        app.include_router(module.router)
    return app
