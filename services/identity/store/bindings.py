"""Bindings: each wallet's binding to a person (the wallet-signed presentation of a resident credential)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.bindings import Binding
from services.identity.tables import bindings


class BindingLimitError(ValueError):
    """The credential binds as many wallets as it may already."""

    def __init__(self, bound: int) -> None:
        super().__init__(f"the credential binds {bound} wallets already")
        self.bound = bound


class BindingRecords:
    """The identity database's bindings (a part of `IdentityStore`)."""

    engine: AsyncEngine

    async def bind(
        self,
        binding: Binding,
        now: datetime,
        publish: Callable[[datetime], Awaitable[None]],
        wallets_per_person: int,
    ) -> tuple[Mapping[str, Any], bool]:
        """Store `binding` and `publish` it, committing only if `publish` returned; the stored binding and
        True. A wallet bound already keeps its binding: that one and False (nothing is published).

        Raises `BindingLimitError` if the person binds `wallets_per_person` wallets already. Binds of one
        person are serialised (a transaction lock on the person), so two at once cannot pass the limit.
        """
        async with self.engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:person, 13))"),
                {"person": binding.person},
            )
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:wallet, 13))"),
                {"wallet": binding.wallet},
            )
            current = (
                (await conn.execute(select(bindings).where(bindings.c.wallet == binding.wallet)))
                .mappings()
                .first()
            )
            if current is not None:
                return current, False
            bound = (
                await conn.execute(
                    select(func.count()).select_from(bindings).where(bindings.c.person == binding.person)
                )
            ).scalar_one()
            if bound >= wallets_per_person:
                raise BindingLimitError(bound)
            values = {
                "wallet": binding.wallet,
                "person": binding.person,
                "issuer": binding.issuer,
                "status_index": binding.status_index,
                "expires_at": binding.expires_at,
                "bound_at": now,
                "binding": dict(binding.signed),
            }
            await conn.execute(insert(bindings).values(**values))
            await publish(now)
        return values, True

    async def binding_of(self, wallet: str) -> Mapping[str, Any] | None:
        """The binding of `wallet`, or None."""
        async with self.engine.connect() as conn:
            return (
                (await conn.execute(select(bindings).where(bindings.c.wallet == wallet))).mappings().first()
            )
