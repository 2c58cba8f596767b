"""A person's erasure at ingest (`services.common.erasure`): their devices stop, their personal data goes.

Ingest keeps no readings (it passes them on); what it holds of a person is their device registrations and
the reward decisions of their wallet. An erasure, in one transaction:

- revokes every active device the person owns (its readings are refused from then on; the erasure request,
  signed by the owner, is kept as the revocation);
- drops what is personal from each of their registrations: the device's location and the signatures that
  covered it. What stays says only that this device key was the person's, of that kind, in that zone, and
  is erased: so the key is never registered again to someone else, and rotation links stay traceable;
- deletes the decisions of their wallet (and keeps decisions of their readings up to then from coming back).

It records the request by its id, so the same request again erases nothing more and gets the same answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.erasure import ErasureRequest
from services.common.events import rfc3339
from services.ingest.decisions import lock_wallets
from services.ingest.store import DeviceStore
from services.ingest.tables import devices, erasures, reward_decisions

KEPT_REGISTRATION_FIELDS = ("device_id", "owner", "kind", "zone", "class", "replaces")
"""What an erased registration keeps: nothing a device's place or its signatures could tell."""


def erased_registration(registration: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    """A registration without its personal details, naming the erasure that removed them."""
    kept = {field: registration[field] for field in KEPT_REGISTRATION_FIELDS if field in registration}
    return {**kept, "erased_by": request_id}


def erasure_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An erasure as ingest answers it."""
    return {
        "request_id": row["request_id"],
        "did": row["did"],
        "devices": row["devices"],
        "decisions": row["decisions"],
        "erased_at": rfc3339(row["erased_at"]),
    }


class ErasureStore:
    """People's erasures in the ingest database."""

    def __init__(self, engine: AsyncEngine, devices: DeviceStore) -> None:
        self.engine = engine
        self.devices = devices

    async def erase(
        self, request: ErasureRequest, request_id: str, signed: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Erase the person's data at ingest once per request: its answer, and whether this call erased."""
        owner = request.did
        async with self.engine.begin() as conn:
            # Held alone: no batch of decisions of this wallet is stored while it is erased.
            await lock_wallets(conn, [owner], exclusive=True)
            done = (
                (await conn.execute(select(erasures).where(erasures.c.request_id == request_id)))
                .mappings()
                .first()
            )
            if done is not None:
                return erasure_json(done), False
            now = (await conn.execute(select(func.now()))).scalar_one()
            owned = (
                (await conn.execute(select(devices).where(devices.c.owner == owner).with_for_update()))
                .mappings()
                .all()
            )
            for device in owned:
                await conn.execute(
                    update(devices)
                    .where(devices.c.device_id == device["device_id"])
                    .values(
                        registration=erased_registration(device["registration"], request_id),
                        revoked_at=device["revoked_at"] or now,
                        revocation=device["revocation"] or dict(signed),
                    )
                )
            deleted = await conn.execute(delete(reward_decisions).where(reward_decisions.c.wallet == owner))
            row = (
                (
                    await conn.execute(
                        insert(erasures)
                        .values(
                            request_id=request_id,
                            did=owner,
                            request=dict(signed),
                            devices=len(owned),
                            decisions=deleted.rowcount,
                            erased_at=now,
                        )
                        .returning(*erasures.c)
                    )
                )
                .mappings()
                .one()
            )
        for device in owned:
            self.devices.cache.pop(device["device_id"])
        return erasure_json(row), True
