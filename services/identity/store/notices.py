"""Notices: to one person or a group, and an inbox resolved when it is read."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.identity.tables import (
    credentials,
    identities,
    notices,
)


class NoticeRecords:
    """The identity database's notices (a part of `IdentityStore`)."""

    engine: AsyncEngine

    async def post_notice(
        self,
        notice_id: str,
        notice: Mapping[str, Any],
        *,
        group: tuple[str, str] | None,
        expires_at: datetime | None,
    ) -> bool:
        """Store a notice, to its ``recipient`` or to `group` (kind, value); True if new (the same signed notice
        again is not a second one). A group notice is one row, whoever and however many it reaches."""
        statement = (
            insert(notices)
            .values(
                notice_id=notice_id,
                recipient=notice.get("recipient"),
                group_kind=group[0] if group else None,
                group_value=group[1] if group else None,
                sender=notice["sender"],
                title=notice["title"],
                body=notice["body"],
                expires_at=expires_at,
                notice=dict(notice),
            )
            .on_conflict_do_nothing(index_elements=[notices.c.notice_id])
            .returning(notices.c.notice_id)
        )
        async with self.engine.begin() as conn:
            return (await conn.execute(statement)).first() is not None

    async def aid_zone_waiting(self, did: str, now: datetime) -> str | None:
        """`did`'s zone if an unexpired notice to the AID holders of that zone waits: only then does the inbox
        need to ask the ledger whether they hold AID."""
        statement = (
            select(identities.c.zone)
            .join(
                notices, and_(notices.c.group_kind == "aid_zone", notices.c.group_value == identities.c.zone)
            )
            .where(identities.c.did == did, or_(notices.c.expires_at.is_(None), notices.c.expires_at > now))
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return await conn.scalar(statement)

    async def notices_for(
        self, did: str, now: datetime, limit: int, *, aid_zone: str | None = None
    ) -> list[Mapping[str, Any]]:
        """The newest unexpired notices `did` reads at `now`: those to them, and those to a group they belong to
        now (their custody; a credential type they hold unrevoked and unexpired; with `aid_zone`, which the
        caller gives once the ledger said they hold AID, the AID holders of their zone), so a group is never
        copied per person and a revoked credential stops its holder's group notices at once."""
        held_types = select(credentials.c.vct).where(
            credentials.c.subject == did,
            credentials.c.revoked_at.is_(None),
            credentials.c.expires_at > now,
        )
        custody = select(identities.c.custody).where(identities.c.did == did).scalar_subquery()
        addressed = or_(
            notices.c.recipient == did,
            and_(notices.c.group_kind == "custody", notices.c.group_value == custody),
            and_(notices.c.group_kind == "credential", notices.c.group_value.in_(held_types)),
            and_(notices.c.group_kind == "aid_zone", notices.c.group_value == aid_zone),
        )
        statement = (
            select(notices)
            .where(addressed, or_(notices.c.expires_at.is_(None), notices.c.expires_at > now))
            .order_by(notices.c.posted_at.desc(), notices.c.notice_id)
            .limit(limit)
        )
        async with self.engine.connect() as conn:
            return list((await conn.execute(statement)).mappings())
