"""Merchants in the directory database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import RowMapping, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.directory.merchants import Merchant, MerchantRegistration
from services.directory.tables import merchants


def _merchant(row: RowMapping) -> Merchant:
    return Merchant(
        wallet=row["wallet"],
        name=row["name"],
        category=row["category"],
        locally_owned=row["locally_owned"],
        accepts=list(row["accepts"]),
        address=row["address"],
        lat=row["lat"],
        lon=row["lon"],
        verified=row["verified"],
        registration=row["registration"],
        registered_at=row["registered_at"],
        updated_at=row["updated_at"],
    )


class MerchantStore:
    """Merchants by wallet; the database's copy is what the API lists, the topic is what others follow."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def register(
        self,
        registration: MerchantRegistration,
        signed: Mapping[str, Any],
        publish: Callable[[Merchant], Awaitable[None]],
    ) -> tuple[Merchant, bool]:
        """Insert or update a merchant, `publish` it, and commit only if `publish` returned.

        Returns the merchant as stored and whether it is new. If `publish` raises, nothing is stored. The
        row stays locked until the commit, so concurrent updates of one wallet are published in the order
        they are stored.
        """
        facts = {
            "name": registration.name,
            "category": registration.category,
            "locally_owned": registration.locally_owned,
            "accepts": list(registration.accepts),
            "address": registration.address,
            "lat": registration.lat,
            "lon": registration.lon,
            "registration": dict(signed),
        }
        statement = insert(merchants).values(wallet=registration.wallet, **facts)
        statement = statement.on_conflict_do_update(
            index_elements=[merchants.c.wallet], set_={**facts, "updated_at": func.now()}
        ).returning(*merchants.c, literal_column("xmax = 0").label("inserted"))
        async with self.engine.begin() as conn:
            row = (await conn.execute(statement)).mappings().one()
            merchant = _merchant(row)
            await publish(merchant)
        return merchant, bool(row["inserted"])

    async def get(self, wallet: str) -> Merchant | None:
        """The merchant of `wallet`, or None."""
        async with self.engine.connect() as conn:
            row = (
                (await conn.execute(select(merchants).where(merchants.c.wallet == wallet))).mappings().first()
            )
        return None if row is None else _merchant(row)

    async def page(self, limit: int, offset: int, category: str | None = None) -> tuple[list[Merchant], int]:
        """A page of merchants ordered by name (then wallet, so pages are stable), and how many match."""
        query = select(merchants)
        count = select(func.count()).select_from(merchants)
        if category is not None:
            query = query.where(merchants.c.category == category)
            count = count.where(merchants.c.category == category)
        query = query.order_by(merchants.c.name, merchants.c.wallet).limit(limit).offset(offset)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
            total = (await conn.execute(count)).scalar_one()
        return [_merchant(row) for row in rows], total
