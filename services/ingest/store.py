"""Device registrations in the ingest database, with a short-lived in-memory cache for the reading path."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import RowMapping, String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.cache import TtlCache
from services.ingest.devices import Device
from services.ingest.tables import devices


def _device(row: RowMapping) -> Device:
    return Device(
        device_id=row["device_id"],
        owner=row["owner"],
        kind=row["kind"],
        zone=row["zone"],
        registration=row["registration"],
        registered_at=row["registered_at"],
    )


class DeviceStore:
    """Stores registrations; `lookup` serves a batch of readings with at most one query.

    Registrations never change once stored (a different one for the same device is refused), so a cached
    registration can only go stale by being deleted, which nothing does yet; unknown devices are not cached,
    so a device registered through another process is seen at once.
    """

    def __init__(self, engine: AsyncEngine, cache: TtlCache[str, Device]) -> None:
        self.engine = engine
        self.cache = cache

    async def register(self, registration: Mapping[str, Any]) -> tuple[Device, bool]:
        """Store a checked registration unless the device is registered already.

        Returns the device as stored and whether this call stored it; the caller compares the stored
        registration with the submitted one when it did not.
        """
        statement = (
            insert(devices)
            .values(
                device_id=registration["device_id"],
                owner=registration["owner"],
                kind=registration["kind"],
                zone=registration["zone"],
                registration=dict(registration),
            )
            .on_conflict_do_nothing(index_elements=[devices.c.device_id])
            .returning(*devices.c)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(statement)).mappings().first()
            created = row is not None
            if row is None:
                query = select(devices).where(devices.c.device_id == registration["device_id"])
                row = (await conn.execute(query)).mappings().one()
        device = _device(row)
        self.cache.put(device.device_id, device)
        return device, created

    async def get(self, device_id: str) -> Device | None:
        """The registered device, or None."""
        return (await self.lookup([device_id])).get(device_id)

    async def lookup(self, device_ids: Collection[str]) -> dict[str, Device]:
        """The registered devices among `device_ids`: cached ones, and the rest in one query."""
        found: dict[str, Device] = {}
        missing: list[str] = []
        for device_id in device_ids:
            device = self.cache.get(device_id)
            if device is None:
                missing.append(device_id)
            else:
                found[device_id] = device
        if missing:
            # One statement for any batch size (= ANY of an array, not IN with a parameter per id).
            ids = bindparam("ids", missing, type_=ARRAY(String))
            async with self.engine.connect() as conn:
                rows = (
                    await conn.execute(select(devices).where(devices.c.device_id == any_(ids)))
                ).mappings()
                for row in rows:
                    device = _device(row)
                    self.cache.put(device.device_id, device)
                    found[device.device_id] = device
        return found
