"""Custodial transfers: each payment signed for a holder, by request id, with the nonce identity chose and the
ledger's receipt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.identity.store.common import (
    SignTransfer,
)
from services.identity.tables import (
    custodial_transfers,
    identities,
)


class TransferRecords:
    """The identity database's transfers (a part of `IdentityStore`)."""

    engine: AsyncEngine

    async def custodial_transfer(
        self, did: str, request_id: str, sign: SignTransfer, *, floor: int
    ) -> tuple[Mapping[str, Any], bool]:
        """The transfer stored for `request_id` of `did`, or a new one signed with the holder's next nonce (above
        every nonce signed for them and at least `floor`), and whether it is new.

        The identity row is locked while the nonce is chosen, so concurrent requests of one holder (from any
        number of replicas) never sign two transfers with one nonce, nor two transfers for one request id.
        """
        async with self.engine.begin() as conn:
            await self._lock_identity(conn, did)
            row = await self._transfer_row(conn, did, request_id)
            if row is not None:
                return row, False
            nonce = await self._next_nonce(conn, did, floor)
            await conn.execute(
                insert(custodial_transfers).values(
                    did=did, request_id=request_id, nonce=nonce, transfer=sign(nonce)
                )
            )
            made = await self._transfer_row(conn, did, request_id)
        assert made is not None
        return made, True

    async def renonce_transfer(
        self, did: str, request_id: str, stale_nonce: int, sign: SignTransfer, *, floor: int
    ) -> Mapping[str, Any]:
        """Sign the unsettled transfer of `request_id` again with a fresh nonce, after the ledger refused its
        nonce as stale (so it can never settle); another caller's renewal, or a receipt, is kept as it is."""
        async with self.engine.begin() as conn:
            await self._lock_identity(conn, did)
            row = await self._transfer_row(conn, did, request_id)
            if row is None:
                raise LookupError(f"no transfer {request_id!r} of {did}")
            if row["receipt"] is not None or row["nonce"] != stale_nonce:
                return row
            nonce = await self._next_nonce(conn, did, floor)
            await conn.execute(
                update(custodial_transfers)
                .where(custodial_transfers.c.did == did, custodial_transfers.c.request_id == request_id)
                .values(nonce=nonce, transfer=sign(nonce))
            )
            made = await self._transfer_row(conn, did, request_id)
        assert made is not None
        return made

    async def record_receipt(
        self, did: str, request_id: str, receipt: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        """Keep the ledger's receipt of the transfer of `request_id`, and return the one kept (the first)."""
        key = custodial_transfers.c.did == did, custodial_transfers.c.request_id == request_id
        async with self.engine.begin() as conn:
            await conn.execute(
                update(custodial_transfers)
                .where(*key, custodial_transfers.c.receipt.is_(None))
                .values(receipt=dict(receipt))
            )
            return await conn.scalar(select(custodial_transfers.c.receipt).where(*key))

    @staticmethod
    async def _lock_identity(conn: AsyncConnection, did: str) -> None:
        await conn.execute(select(identities.c.did).where(identities.c.did == did).with_for_update())

    @staticmethod
    async def _transfer_row(conn: AsyncConnection, did: str, request_id: str) -> Mapping[str, Any] | None:
        statement = select(custodial_transfers).where(
            custodial_transfers.c.did == did, custodial_transfers.c.request_id == request_id
        )
        return (await conn.execute(statement)).mappings().first()

    @staticmethod
    async def _next_nonce(conn: AsyncConnection, did: str, floor: int) -> int:
        last = await conn.scalar(
            select(func.max(custodial_transfers.c.nonce)).where(custodial_transfers.c.did == did)
        )
        return max((last or 0) + 1, floor)
