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

from services.simulator.fleet import Fleet
from services.simulator.settings import SimulatorSettings

log = logging.getLogger(__name__)


async def register(client: httpx.AsyncClient, fleet: Fleet, concurrency: int = 20) -> None:
    """Register every device (idempotent: a device already registered to its owner is fine)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(registration: dict) -> None:
        async with gate:
            response = await client.post("/v1/devices", json=registration)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"device registration failed: {response.status_code} {response.text}")

    await asyncio.gather(*(one(d.registration()) for d in fleet.devices))


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


async def run(settings: SimulatorSettings, stop: asyncio.Event) -> None:
    """Grant consent, register the fleet and send readings until `stop` is set. Sequence numbers start from the
    current time in milliseconds so that a restarted simulator sends new readings, not replays."""
    fleet = Fleet.generate(
        settings.seed, settings.wallets, settings.devices, first_seq=int(time.time() * 1000)
    )
    async with httpx.AsyncClient(base_url=settings.identity_url, timeout=30) as identity:
        await grant_consents(identity, fleet)
    log.info("granted the city consent for the data of %d wallets", len(fleet.wallets))
    async with httpx.AsyncClient(base_url=settings.ingest_url, timeout=30) as client:
        await register(client, fleet)
        log.info("registered %d devices of %d wallets", len(fleet.devices), len(fleet.wallets))
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
