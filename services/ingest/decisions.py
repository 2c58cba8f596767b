"""A person's reward decisions at ingest: why each of their readings earned what it did, or nothing.

Ingest follows ``city.reward-decisions.v1`` (the rewards worker's decisions) into its own table, one row per
reading (a redelivered decision changes nothing), keeping what a person needs to understand a decision (the
outcome, the rewards by rule, the reasons, the policy version) and not the reading's values or zone. The
person reads their own by signed read (`services.ingest.api.decisions`). A decision of a wallet taken before
that wallet's erasure (`services.ingest.erasures`) is not stored again, should the topic deliver it again; nor
is one decided after the erasure on a reading accepted before it (it was in flight on city.readings.v1), even
one dated a little ahead of the erasure (a device's clock may run ahead, `max_ahead_s`): a decision is kept
for an erased wallet only if its reading is dated after the erasure and comes from a device registered after
it, since the erasure revoked and erased every device the wallet owned. Readings of those devices arriving
after the erasure are refused as revoked, and leave no row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.consents import parse_time
from services.common.events import rfc3339
from services.common.kafka import IncomingRecord, Rejection
from services.ingest.tables import devices, erasures, reward_decisions

MAX_PAGE = 1000
"""Most decisions one read returns (a client asks again with ``before``)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class CursorError(ValueError):
    """A ``before`` cursor this service did not give."""


@dataclass(frozen=True)
class Cursor:
    """Where a page of decisions (newest first) stopped: decisions strictly older than (ts, reading_id)."""

    ts: datetime
    reading_id: str

    def text(self) -> str:
        """The cursor as ``next_before``: the reading's time in microseconds since the epoch, and its id."""
        micros = (self.ts - _EPOCH) // _MICROSECOND
        return f"{micros}.{self.reading_id}"

    @staticmethod
    def parse(value: str) -> Cursor:
        """A cursor from its text; raises `CursorError`."""
        micros, _, reading_id = value.partition(".")
        if not micros.isdigit() or len(micros) > 18 or len(reading_id) != 64:
            raise CursorError(f"{value!r} is not a cursor of this service (give next_before as it came)")
        return Cursor(_EPOCH + int(micros) * _MICROSECOND, reading_id)


def decision_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A decision as served to the person."""
    return {
        "reading_id": row["reading_id"],
        "wallet": row["wallet"],
        "device_id": row["device_id"],
        "kind": row["kind"],
        "ts": rfc3339(row["ts"]),
        "outcome": row["outcome"],
        "rewards": [{"rule": r["rule"], "amount": r["amount"]} for r in row["rewards"]],
        "reasons": row["reasons"],
        "policy_version": row["policy_version"],
        "decided_at": rfc3339(row["decided_at"]),
    }


async def lock_wallets(conn: AsyncConnection, wallets: Sequence[str], *, exclusive: bool) -> None:
    """Take, for the transaction of `conn`, a lock per wallet (in sorted order, so two batches never wait
    on each other): storing decisions shares it, an erasure holds it alone, so no decision of a wallet taken
    before its erasure is stored after the erasure deleted the others."""
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await conn.execute(
        text(
            f"SELECT count({lock}(hashtextextended(w, 0))) FROM (SELECT DISTINCT unnest(:wallets) AS w ORDER BY 1) s"
        ).bindparams(bindparam("wallets", sorted(set(wallets)), type_=ARRAY(String)))
    )


_KEEP = insert(reward_decisions).on_conflict_do_nothing(index_elements=[reward_decisions.c.reading_id])


class DecisionStore:
    """The decisions table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def keep(self, decisions: Sequence[tuple[Mapping[str, Any], datetime, int, int]]) -> None:
        """Store decisions (value, its reading's time, partition, offset) unless stored before or of a
        wallet erased since the reading or on a device of the wallet's erased then."""
        if not decisions:
            return
        async with self.engine.begin() as conn:
            wallets = [value["wallet"] for value, *_ in decisions]
            await lock_wallets(conn, wallets, exclusive=False)
            erased = dict(
                (
                    await conn.execute(
                        select(erasures.c.did, func.max(erasures.c.erased_at))
                        .where(erasures.c.did.in_(set(wallets)))
                        .group_by(erasures.c.did)
                    )
                ).all()
            )
            # The devices the erasures erased (looked up only for a batch naming an erased wallet).
            ids = {value["device_id"] for value, *_ in decisions if value["wallet"] in erased}
            gone = (
                set(
                    (
                        await conn.execute(
                            select(devices.c.device_id).where(
                                devices.c.device_id.in_(ids), devices.c.registration.has_key("erased_by")
                            )
                        )
                    ).scalars()
                )
                if ids
                else set()
            )
            rows = [
                {
                    "reading_id": value["reading_id"],
                    "wallet": value["wallet"],
                    "device_id": value["device_id"],
                    "kind": value["kind"],
                    "ts": ts,
                    "outcome": value["outcome"],
                    "rewards": value["rewards"],
                    "reasons": value["reasons"],
                    "policy_version": value["policy_version"],
                    "partition": partition,
                    "offset": offset,
                }
                for value, ts, partition, offset in decisions
                if value["wallet"] not in erased
                or (ts > erased[value["wallet"]] and value["device_id"] not in gone)
            ]
            if rows:
                # Parameters apart from the statement: it is compiled once and cached, where a statement
                # holding a batch's values is compiled again for every batch (a fifth of ingest's CPU).
                await conn.execute(_KEEP, rows)

    async def of_wallet(
        self, wallet: str, before: Cursor | None, limit: int
    ) -> tuple[list[dict[str, Any]], Cursor | None]:
        """The wallet's decisions, newest (by the reading's time) first, older than `before`, at most
        `limit`; and the cursor of the next page (None: no more)."""
        query = select(reward_decisions).where(reward_decisions.c.wallet == wallet)
        if before is not None:
            query = query.where(
                tuple_(reward_decisions.c.ts, reward_decisions.c.reading_id)
                < tuple_(before.ts, before.reading_id)
            )
        query = query.order_by(reward_decisions.c.ts.desc(), reward_decisions.c.reading_id.desc()).limit(
            limit + 1
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        more = len(rows) > limit
        rows = rows[:limit]
        following = Cursor(rows[-1]["ts"], rows[-1]["reading_id"]) if more else None
        return [decision_json(row) for row in rows], following

    async def get(self, wallet: str, reading_id: str) -> dict[str, Any] | None:
        """The decision on a reading of the wallet, or None."""
        query = select(reward_decisions).where(
            reward_decisions.c.reading_id == reading_id, reward_decisions.c.wallet == wallet
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return decision_json(row) if row else None


class DecisionFold:
    """The `BatchConsumer` handler keeping ``city.reward-decisions.v1`` (schema-valid records) in the
    decisions table; a record whose time does not exist (the schema's pattern lets ``2026-99-99...`` through)
    is rejected, to the topic's DLQ with the reason."""

    def __init__(self, store: DecisionStore) -> None:
        self.store = store

    async def __call__(self, records: list[IncomingRecord]) -> list[Rejection]:
        good: list[tuple[Mapping[str, Any], datetime, int, int]] = []
        rejections: list[Rejection] = []
        for record in records:
            try:
                ts = parse_time(record.value["ts"])
            except ValueError as exc:
                rejections.append(Rejection(record, f"impossible-date: ts {record.value['ts']!r}: {exc}"))
                continue
            good.append((record.value, ts, record.partition, record.offset))
        await self.store.keep(good)
        return rejections
