"""Service records: what providers recorded, and the counts per day."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity.tables import (
    service_records,
)


class ServiceRecords:
    """The identity database's service records (a part of `IdentityStore`)."""

    engine: AsyncEngine

    async def record_service(
        self, record_id: str, provider: str, subject: str, service: str, day: date
    ) -> bool:
        """Store a service record; True if new (the same signed record again is not counted twice)."""
        statement = (
            insert(service_records)
            .values(record_id=record_id, provider=provider, subject=subject, service=service, day=day)
            .on_conflict_do_nothing(index_elements=[service_records.c.record_id])
            .returning(service_records.c.record_id)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).first() is not None

    async def service_counts(self, since: date, until: date) -> list[Mapping[str, Any]]:
        """Services given per service and day between two days (inclusive): counts only, no identities."""
        statement = (
            select(service_records.c.service, service_records.c.day, func.count().label("count"))
            .where(service_records.c.day >= since, service_records.c.day <= until)
            .group_by(service_records.c.service, service_records.c.day)
            .order_by(service_records.c.day, service_records.c.service)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(statement)).mappings())

    # --- transfers signed for custodial wallets ---------------------------------------------------------------
