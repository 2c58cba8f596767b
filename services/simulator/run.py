"""The simulator's I/O: grant the city consent for the fleet's data on identity, register the fleet with
ingest, then send signed readings at a steady rate."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import signal
import time
from datetime import UTC, datetime

import httpx

from services.common.bindings import binding_request, development_order_key
from services.common.events import now_rfc3339
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.simulator.fleet import Fleet
from services.simulator.settings import SimulatorSettings

log = logging.getLogger(__name__)


async def register(client: httpx.AsyncClient, fleet: Fleet, concurrency: int = 20) -> None:
    """Register every device, the city devices' by the operator too (idempotent: a device already registered to
    its owner is fine)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(registration: dict) -> None:
        async with gate:
            response = await client.post("/v1/devices", json=registration)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"device registration failed: {response.status_code} {response.text}")

    await asyncio.gather(*(one(registration) for registration in fleet.registrations()))


async def grant_consents(client: httpx.AsyncClient, fleet: Fleet, concurrency: int = 20) -> None:
    """Post every wallet's signed consent grants to identity (a restart grants anew: a later grant replaces
    the earlier one). They reach ingest within seconds; until then it refuses the readings with no_consent."""
    gate = asyncio.Semaphore(concurrency)

    async def one(grant: dict) -> None:
        async with gate:
            response = await client.post("/v1/consents", json=grant)
            if response.status_code != 201:
                raise RuntimeError(f"consent grant failed: {response.status_code} {response.text}")

    await asyncio.gather(*(one(grant) for grant in fleet.consent_grants(datetime.now(UTC))))


async def bind_wallets(
    client: httpx.AsyncClient, fleet: Fleet, issuer: Keypair, concurrency: int = 10
) -> None:
    """Bind every wallet to a person of its own, as a resident would: register the wallet's did on identity,
    have `issuer` (a key of IDENTITY_ISSUERS) order it a resident credential, and present that for the wallet
    (``POST /v1/bindings``). Under a policy that requires binding, only bound wallets earn. A wallet bound
    before (a restart) keeps its binding: identity answers 200, or 409 wallet-bound-elsewhere for the new
    credential, both fine here."""
    gate = asyncio.Semaphore(concurrency)

    async def one(wallet: Keypair) -> None:
        async with gate:
            registered = await client.post(
                "/v1/identities", json=wallet.sign({"did": wallet.did, "issued_at": now_rfc3339()})
            )
            if registered.status_code not in (200, 201):
                raise RuntimeError(
                    f"identity registration failed: {registered.status_code} {registered.text}"
                )
            order = {
                "issuer": issuer.did,
                "action": "issue-credential",
                "subject": wallet.did,
                "facts": {"given_name": "Sim", "family_name": wallet.did[-6:], "birthdate": "1990-01-01"},
                "issued_at": now_rfc3339(),
            }
            issued = await client.post("/v1/credentials", json=issuer.sign(order))
            if issued.status_code != 201:
                raise RuntimeError(f"credential order failed: {issued.status_code} {issued.text}")
            request = binding_request(issued.json()["sd_jwt"], wallet, wallet, datetime.now(UTC))
            bound = await client.post("/v1/bindings", json=request)
            if bound.status_code not in (200, 201) and "wallet-bound-elsewhere" not in bound.text:
                raise RuntimeError(f"binding failed: {bound.status_code} {bound.text}")

    await asyncio.gather(*(one(wallet) for wallet in fleet.wallets))


async def run(settings: SimulatorSettings, stop: asyncio.Event) -> None:
    """Grant consent, register the fleet and send readings until `stop` is set. Sequence numbers start from the
    current time in milliseconds so that a restarted simulator sends new readings, not replays."""
    fleet = Fleet.generate(
        settings.seed,
        settings.wallets,
        settings.devices,
        first_seq=int(time.time() * 1000),
        operator=settings.operator(),
    )
    async with httpx.AsyncClient(base_url=settings.identity_url, timeout=30) as identity:
        await grant_consents(identity, fleet)
        log.info("granted the city consent for the data of %d wallets", len(fleet.wallets))
        await bind_wallets(identity, fleet, development_order_key(PlatformSettings().data_dir))
        log.info("bound each of the %d wallets to a person (a resident credential)", len(fleet.wallets))
    async with httpx.AsyncClient(base_url=settings.ingest_url, timeout=30) as client:
        await register(client, fleet)
        log.info(
            "registered %d devices of %d wallets, and %d city devices attesting their behaviour",
            len(fleet.devices),
            len(fleet.wallets),
            len(fleet.city_devices),
        )
        devices = itertools.cycle(fleet.devices)
        interval = settings.batch_size / settings.readings_per_second
        next_send = time.monotonic()
        while not stop.is_set():
            now = datetime.now(UTC)
            batch = [next(devices).next_reading(now) for _ in range(settings.batch_size)]
            try:
                response = await client.post("/v1/readings", json={"readings": batch})
                if response.status_code != 202:
                    log.warning("ingest answered %d: %s", response.status_code, response.text[:200])
            except httpx.HTTPError as exc:
                log.warning("ingest unreachable: %s", exc)
            next_send += interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, next_send - time.monotonic()))


def run_until_signalled(settings: SimulatorSettings | None = None) -> None:
    """Run the simulator until SIGINT or SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(settings or SimulatorSettings(), stop)

    asyncio.run(main())
