"""Credentials: issued SD-JWTs, their revocation and status list, and what a custodial holder presents."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity.tables import (
    credentials,
)


class CredentialRecords:
    """The identity database's credentials (a part of `IdentityStore`)."""

    engine: AsyncEngine

    async def add_credential(
        self,
        credential_id: str,
        subject: str,
        *,
        vct: str,
        issued_by: str,
        issued_at: datetime,
        expires_at: datetime,
        build: Callable[[int], str],
        keep: bool,
    ) -> tuple[str, int] | None:
        """Store a credential, whose SD-JWT `build(status_index)` makes; None if `credential_id` exists.

        The SD-JWT is kept only when `keep` (custodial holders present through the service).
        """
        async with self.engine.begin() as conn:
            try:
                index = (
                    await conn.execute(
                        insert(credentials)
                        .values(
                            credential_id=credential_id,
                            subject=subject,
                            vct=vct,
                            issued_by=issued_by,
                            issued_at=issued_at,
                            expires_at=expires_at,
                        )
                        .returning(credentials.c.status_index)
                    )
                ).scalar_one()
            except IntegrityError:
                return None
            sd_jwt = build(index)
            if keep:
                await conn.execute(
                    update(credentials)
                    .where(credentials.c.credential_id == credential_id)
                    .values(sd_jwt=sd_jwt)
                )
        return sd_jwt, index

    async def revoke(self, credential_id: str, now: datetime) -> Mapping[str, Any] | None:
        """Revoke a credential (once; revoking again keeps the first time); None if there is no such one."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(credentials)
                .where(credentials.c.credential_id == credential_id, credentials.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            row = (
                (await conn.execute(select(credentials).where(credentials.c.credential_id == credential_id)))
                .mappings()
                .first()
            )
        return row

    async def is_revoked(self, status_index: int) -> bool:
        """True if the credential at `status_index` is revoked."""
        async with self.engine.connect() as conn:
            revoked_at = (
                await conn.execute(
                    select(credentials.c.revoked_at).where(credentials.c.status_index == status_index)
                )
            ).scalar_one_or_none()
        return revoked_at is not None

    async def status_list(self) -> tuple[list[int], int]:
        """The revoked status indices, and the size of the list (one past the highest index)."""
        async with self.engine.connect() as conn:
            revoked = (
                await conn.execute(
                    select(credentials.c.status_index).where(credentials.c.revoked_at.isnot(None))
                )
            ).scalars()
            indices = list(revoked)
            size = (await conn.execute(select(func.max(credentials.c.status_index)))).scalar_one_or_none()
        return indices, (size + 1 if size is not None else 0)

    async def custodial_credential(self, did: str, now: datetime) -> str | None:
        """The newest valid (unrevoked, unexpired) credential kept for a custodial holder."""
        async with self.engine.connect() as conn:
            return (
                await conn.execute(
                    select(credentials.c.sd_jwt)
                    .where(
                        credentials.c.subject == did,
                        credentials.c.sd_jwt.isnot(None),
                        credentials.c.revoked_at.is_(None),
                        credentials.c.expires_at > now,
                    )
                    .order_by(credentials.c.issued_at.desc())
                    .limit(1)
                )
            ).scalar_one_or_none()
