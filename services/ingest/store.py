"""Device registrations in the ingest database, with a short-lived in-memory cache for the reading path."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import RowMapping, String, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.ingest.cache import TtlCache
from services.ingest.devices import Device
from services.ingest.tables import device_sequences, devices

# Sequence numbers are >= 0, so a device with nothing published yet has last_seq -1.
NO_SEQUENCE = -1


class RotationError(ValueError):
    """A key rotation that cannot be done (the message says why)."""


def _device(row: RowMapping) -> Device:
    return Device(
        device_id=row["device_id"],
        owner=row["owner"],
        kind=row["kind"],
        zone=row["zone"],
        registration=row["registration"],
        registered_at=row["registered_at"],
        replaces=row["replaces"],
        replaced_by=row["replaced_by"],
        revoked_at=row["revoked_at"],
        revocation=row["revocation"],
    )


class DeviceStore:
    """Stores registrations; `lookup` serves a batch of readings with at most one query.

    The cache serves what never changes once stored (owner, kind, zone, the signed registration). Whether a
    device is revoked is not taken from it: the sequence check reads it under the row lock of every batch
    (`services.ingest.sequences`), so a revocation takes effect at once on every instance. Unknown devices
    are not cached, so a device registered through another process is seen at once.
    """

    def __init__(self, engine: AsyncEngine, cache: TtlCache[str, Device]) -> None:
        self.engine = engine
        self.cache = cache

    async def register(self, registration: Mapping[str, Any]) -> tuple[Device, bool]:
        """Store a checked registration unless the device is registered already; with ``replaces``, retire
        the replaced device in the same transaction.

        Returns the device as stored and whether this call stored it; the caller compares the stored
        registration with the submitted one when it did not. Raises `RotationError` if the replaced device
        is not an active device of the same owner.
        """
        statement = (
            insert(devices)
            .values(
                device_id=registration["device_id"],
                owner=registration["owner"],
                kind=registration["kind"],
                zone=registration["zone"],
                registration=dict(registration),
                replaces=registration.get("replaces"),
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
            else:
                await conn.execute(
                    insert(device_sequences).values(device_id=row["device_id"], last_seq=NO_SEQUENCE)
                )
                if row["replaces"]:
                    await self._retire(conn, row["replaces"], row["device_id"], row["owner"])
        device = _device(row)
        self.cache.put(device.device_id, device)
        return device, created

    async def _retire(self, conn: AsyncConnection, old_id: str, new_id: str, owner: str) -> None:
        retired = await conn.execute(
            update(devices)
            .where(
                devices.c.device_id == old_id,
                devices.c.owner == owner,
                devices.c.revoked_at.is_(None),
            )
            .values(revoked_at=func.now(), replaced_by=new_id)
        )
        if retired.rowcount != 1:
            # Raising rolls the new registration back with it.
            raise RotationError(f"replaces: {old_id} is not an active device of this owner")
        self.cache.pop(old_id)

    async def revoke(self, device_id: str, revocation: Mapping[str, Any]) -> Device | None:
        """Mark the device revoked with its signed revocation (the first revocation stays); the device as
        stored, or None if there is no such device."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(devices)
                .where(devices.c.device_id == device_id, devices.c.revoked_at.is_(None))
                .values(revoked_at=func.now(), revocation=dict(revocation))
            )
            row = (
                (await conn.execute(select(devices).where(devices.c.device_id == device_id)))
                .mappings()
                .first()
            )
        self.cache.pop(device_id)
        return _device(row) if row else None

    async def list_devices(
        self, owner: str | None, include_revoked: bool, limit: int, offset: int
    ) -> list[Device]:
        """Registered devices, optionally of one owner, oldest first."""
        query = select(devices).order_by(devices.c.registered_at, devices.c.device_id)
        if owner is not None:
            query = query.where(devices.c.owner == owner)
        if not include_revoked:
            query = query.where(devices.c.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit).offset(offset))).mappings()
            return [_device(row) for row in rows]

    async def get(self, device_id: str) -> Device | None:
        """The registered device as stored now (not cached), or None."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(devices).where(devices.c.device_id == device_id)))
                .mappings()
                .first()
            )
        return _device(row) if row else None

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
