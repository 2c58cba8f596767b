"""Consents: each subject's latest signed change per category and grantee."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import signing
from services.common.consents import ConsentChange
from services.identity.store.common import (
    StaleConsentError,
)
from services.identity.tables import (
    consent_receipts,
    consents,
)


class ConsentRecords:
    """The identity database's consents (a part of `IdentityStore`)."""

    engine: AsyncEngine

    async def change_consent(
        self,
        change: ConsentChange,
        receipt: Callable[[datetime], dict[str, Any]],
        publish: Callable[[datetime], Awaitable[None]],
        now: datetime,
    ) -> dict[str, Any]:
        """Store a consent change and its receipt, `publish` it, and commit only if `publish` returned.

        A change not newer (by ``issued_at``) than the stored one raises `StaleConsentError`: a replayed
        grant cannot undo a later revocation. The row stays locked until the commit, so changes of one key
        reach the topic in the order they are stored.
        """
        key = (
            consents.c.subject == change.subject,
            consents.c.category == change.category,
            consents.c.grantee == change.grantee,
        )
        values = {
            "status": change.status,
            "purpose": change.purpose,
            "until": change.until,
            "issued_at": change.issued_at,
            "changed_at": now,
            "consent": dict(change.signed),
        }
        made = receipt(now)
        async with self.engine.begin() as conn:
            current = (
                await conn.execute(select(consents.c.issued_at).where(*key).with_for_update())
            ).scalar_one_or_none()
            if current is not None and current >= change.issued_at:
                raise StaleConsentError("a consent change at or after this one is stored already")
            if current is None:
                try:
                    await conn.execute(
                        insert(consents).values(
                            subject=change.subject,
                            category=change.category,
                            grantee=change.grantee,
                            receipt=made,
                            **values,
                        )
                    )
                except IntegrityError as exc:  # a concurrent first change of the same key won
                    raise StaleConsentError("a concurrent change of this consent was stored first") from exc
            else:
                await conn.execute(update(consents).where(*key).values(receipt=made, **values))
            # Every receipt is kept, to be anchored on the chain (`services.identity.anchoring`).
            await conn.execute(
                insert(consent_receipts).values(
                    receipt_id=signing.object_id(made), subject=change.subject, receipt=made
                )
            )
            await publish(now)
        return made

    async def consents_of(self, subject: str) -> list[Mapping[str, Any]]:
        """Every consent of `subject` (current state, with its latest receipt)."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(consents)
                .where(consents.c.subject == subject)
                .order_by(consents.c.category, consents.c.grantee)
            )
            return list(rows.mappings())

    async def consent_allows(self, subject: str, category: str, grantee: str, now: datetime) -> bool:
        """True if `subject` currently grants `category` to `grantee`."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(consents.c.status, consents.c.until).where(
                        consents.c.subject == subject,
                        consents.c.category == category,
                        consents.c.grantee == grantee,
                    )
                )
            ).first()
        return row is not None and row.status == "granted" and (row.until is None or now < row.until)
