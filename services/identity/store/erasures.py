"""People's erasure requests in the identity database (a part of `IdentityStore`): the request recorded with
identity's own erasure in one transaction, then each service's completion as it answers.

What identity erases of the did, and what it keeps (the README's "Erasure" says why):

- erased: the signed registration or enrolment and the zone (`identities`: the row keeps the did, its custody
  and when it registered); the credentials' SD-JWTs kept for a custodial holder (their name, birth date,
  address); notices addressed to the person; the person as subject of service records (the record stays,
  anonymous, in the counts); the wallet's binding to a person (its presentation; on city.bindings.v1 too,
  where identity writes the city's signed unbinding, then a tombstone: `services.common.bindings`); the
  re-proof inside PIN reset orders (a photo's hash or a credential); the photo on record of a custodial
  wallet, and with ``close_wallet`` the wallet itself (the sealed key and its recovery copy);
- kept: consents and their receipts (the proof that past processing was allowed), the credentials' metadata
  (so the status list still answers for a credential someone may still hold), and the custodial transfers
  identity signed (the city's books, as on the chain).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import delete, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert

from services.identity.tables import (
    bindings,
    credentials,
    custodial_transfers,
    custodial_wallets,
    erasures,
    identities,
    notices,
    pin_resets,
    service_records,
)

Part = Literal["ingest", "ledger"]
PARTS: tuple[Part, ...] = ("ingest", "ledger")
"""The services a person's erasure is forwarded to, in order: ingest first, so that no more of the person's
readings are accepted while the ledger erases the evidence of what they earned."""


class ErasureRecords:
    """The identity database's erasures."""

    engine: Any

    async def record_erasure(
        self,
        request_id: str,
        did: str,
        request: Mapping[str, Any],
        close_wallet: bool,
        unbind: Callable[[Sequence[Mapping[str, Any]]], Awaitable[None]],
    ) -> tuple[Mapping[str, Any], bool]:
        """Record the request and erase identity's rows of `did` in one transaction, once per request: the
        erasure's row, and whether this call recorded it.

        `unbind` is given the bindings deleted (wallet, binding: the signed request), if any, and must publish
        their removal: the transaction commits only if it returned (as a binding is stored only once
        published), so a binding is never forgotten here and left standing on city.bindings.v1."""
        async with self.engine.begin() as conn:
            row = (
                (
                    await conn.execute(
                        insert(erasures)
                        .values(request_id=request_id, did=did, request=dict(request))
                        .on_conflict_do_nothing(index_elements=[erasures.c.request_id])
                        .returning(*erasures.c)
                    )
                )
                .mappings()
                .first()
            )
            if row is None:
                found = await conn.execute(select(erasures).where(erasures.c.request_id == request_id))
                return found.mappings().one(), False
            await conn.execute(
                update(identities).where(identities.c.did == did).values(registration=None, zone=None)
            )
            await conn.execute(update(credentials).where(credentials.c.subject == did).values(sd_jwt=None))
            await conn.execute(delete(notices).where(notices.c.recipient == did))
            await conn.execute(
                update(service_records).where(service_records.c.subject == did).values(subject=None)
            )
            # The lock `bind` takes on the wallet: a binding being stored now is either seen here or stored after.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:wallet, 13))"), {"wallet": did}
            )
            unbound = (
                (
                    await conn.execute(
                        delete(bindings)
                        .where(bindings.c.wallet == did)
                        .returning(bindings.c.wallet, bindings.c.binding)
                    )
                )
                .mappings()
                .all()
            )
            if unbound:
                await unbind(unbound)
            await conn.execute(
                update(pin_resets)
                .where(pin_resets.c.did == did)
                .values(order=pin_resets.c.order.op("-")(literal_column("'proof'")))
            )
            # The memos of the payments identity signed for them: the chain and the books keep only the digests.
            await conn.execute(
                update(custodial_transfers)
                .where(custodial_transfers.c.did == did)
                .values(transfer=custodial_transfers.c.transfer.op("-")(literal_column("'memo_disclosure'")))
            )
            if close_wallet:
                await conn.execute(delete(custodial_wallets).where(custodial_wallets.c.did == did))
            else:
                await conn.execute(
                    update(custodial_wallets).where(custodial_wallets.c.did == did).values(photo_sha256=None)
                )
            row = (
                (
                    await conn.execute(
                        update(erasures)
                        .where(erasures.c.request_id == request_id)
                        .values(identity_erased_at=func.now())
                        .returning(*erasures.c)
                    )
                )
                .mappings()
                .one()
            )
        return row, True

    async def erasure(self, request_id: str) -> Mapping[str, Any] | None:
        """The erasure recorded under `request_id`, or None."""
        async with self.engine.connect() as conn:
            found = await conn.execute(select(erasures).where(erasures.c.request_id == request_id))
            return found.mappings().first()

    async def open_erasure(self, did: str) -> Mapping[str, Any] | None:
        """The latest erasure of `did` not completed yet, or None."""
        query = (
            select(erasures)
            .where(erasures.c.did == did, erasures.c.completed_at.is_(None))
            .order_by(erasures.c.requested_at.desc())
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).mappings().first()

    async def pending_erasures(self, limit: int = 100) -> list[Mapping[str, Any]]:
        """Erasures some service has not completed yet, oldest first."""
        query = (
            select(erasures)
            .where(erasures.c.completed_at.is_(None))
            .order_by(erasures.c.requested_at)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(query)).mappings().all())

    async def erasure_done(self, request_id: str, part: Part, at: datetime) -> Mapping[str, Any]:
        """Record that `part` erased (at `at`, its own time); completes the erasure once every part has."""
        column = erasures.c[f"{part}_erased_at"]
        async with self.engine.begin() as conn:
            await conn.execute(
                update(erasures)
                .where(erasures.c.request_id == request_id, column.is_(None))
                .values({column: at})
            )
            done = [erasures.c[f"{p}_erased_at"].is_not(None) for p in PARTS]
            await conn.execute(
                update(erasures)
                .where(erasures.c.request_id == request_id, erasures.c.completed_at.is_(None), *done)
                .values(completed_at=func.now(), last_error=None)
            )
            row = await conn.execute(select(erasures).where(erasures.c.request_id == request_id))
            return row.mappings().one()

    async def erasure_failed(self, request_id: str, error: str) -> None:
        """Count a forwarding that failed, and why (retried later)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(erasures)
                .where(erasures.c.request_id == request_id)
                .values(attempts=erasures.c.attempts + 1, last_error=error[:2000])
            )
