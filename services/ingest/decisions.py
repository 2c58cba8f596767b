"""A person's reward decisions at ingest: why each of their readings earned what it did, or nothing.

Ingest follows ``city.reward-decisions.v1`` (the rewards worker's decisions: a record per readings record, a
decision a line, attested by the rewards oracle) into its own table, one row per reading (a redelivered
decision changes nothing), keeping what a person needs to understand a decision (the outcome, the rewards by
rule, the reasons, the policy version) and not the reading's values or zone. A record that no key of
``INGEST_REWARDS_ORACLES`` attested is refused whole (to the topic's DLQ), so no one with write access to the
topic can put words in the rewards worker's mouth. The
person reads their own by signed read (`services.ingest.api.decisions`). A decision of a wallet taken before
that wallet's erasure (`services.ingest.erasures`) is not stored again, should the topic deliver it again; nor
is one decided after the erasure on a reading accepted before it (it was in flight on city.readings.v1), even
one dated a little ahead of the erasure (a device's clock may run ahead, `max_ahead_s`): a decision is kept
for an erased wallet only if its reading is dated after the erasure and comes from a device registered after
it, since the erasure revoked and erased every device the wallet owned. Readings of those devices arriving
after the erasure are refused as revoked, and leave no row.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, bindparam, func, select, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common import attestation
from services.common.batch_consumer import IncomingRecord, Rejection
from services.common.decisions import UnreadableDecisionError, read_decision
from services.common.events import encode_json, rfc3339
from services.common.topics import REWARD_DECISIONS
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


# One statement for a batch, its columns as arrays: parameters apart from the statement (compiled once and
# cached), and no per-row work in SQLAlchemy (binding each row's JSON was most of the consumer's CPU).
_KEEP = text(
    """INSERT INTO reward_decisions
         (reading_id, wallet, device_id, kind, ts, outcome, rewards, reasons, policy_version, partition, "offset")
       SELECT r, w, d, k, t, o, rw::jsonb, rs::jsonb, pv, p, n
       FROM unnest(:reading_ids, :wallets, :device_ids, :kinds, :ts, :outcomes, :rewards, :reasons,
                   :policy_versions, :partitions, :offsets) AS u(r, w, d, k, t, o, rw, rs, pv, p, n)
       ON CONFLICT (reading_id) DO NOTHING"""
).bindparams(
    *(
        bindparam(name, type_=ARRAY(String))
        for name in ("reading_ids", "wallets", "device_ids", "kinds", "outcomes", "rewards", "reasons")
    ),
    bindparam("policy_versions", type_=ARRAY(String)),
    bindparam("ts", type_=ARRAY(DateTime(timezone=True))),
    bindparam("partitions", type_=ARRAY(Integer)),
    bindparam("offsets", type_=ARRAY(BigInteger)),
)


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
                (value, ts, partition, offset)
                for value, ts, partition, offset in decisions
                if value["wallet"] not in erased
                or (ts > erased[value["wallet"]] and value["device_id"] not in gone)
            ]
            if rows:
                await conn.execute(
                    _KEEP,
                    {
                        "reading_ids": [value["reading_id"] for value, *_ in rows],
                        "wallets": [value["wallet"] for value, *_ in rows],
                        "device_ids": [value["device_id"] for value, *_ in rows],
                        "kinds": [value["kind"] for value, *_ in rows],
                        "ts": [ts for _, ts, _, _ in rows],
                        "outcomes": [value["outcome"] for value, *_ in rows],
                        "rewards": [encode_json(value["rewards"]).decode() for value, *_ in rows],
                        "reasons": [encode_json(value["reasons"]).decode() for value, *_ in rows],
                        "policy_versions": [value["policy_version"] for value, *_ in rows],
                        "partitions": [partition for _, _, partition, _ in rows],
                        "offsets": [offset for *_, offset in rows],
                    },
                )

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
    """The `BatchConsumer` handler (of undecoded records) keeping ``city.reward-decisions.v1`` in the decisions
    table: the lines of each record one of `oracles` attested. A record that is not one (unattested, altered,
    another key's) is rejected whole, to the topic's DLQ with the reason; so is a record with a line that is not
    a decision (not JSON, the wrong shape, a time that does not exist: the schema's pattern lets
    ``2026-99-99...`` through), its other lines kept."""

    def __init__(self, store: DecisionStore, oracles: Collection[str]) -> None:
        self.store = store
        self.oracles = frozenset(oracles)

    async def __call__(self, records: list[IncomingRecord]) -> list[Rejection]:
        good: list[tuple[Mapping[str, Any], datetime, int, int]] = []
        rejections: list[Rejection] = []
        for record in records:
            try:
                lines = attestation.lines_by(
                    record.headers.get(attestation.HEADER),
                    REWARD_DECISIONS.name,
                    record.raw or b"",  # a tombstone: no lines, refused as not attested
                    self.oracles,
                )
            except attestation.AttestationError as exc:
                rejections.append(Rejection(record, str(exc)))
                continue
            bad = []
            for index, line in enumerate(lines):
                try:
                    value, ts = read_decision(line)
                except UnreadableDecisionError as exc:
                    bad.append(f"line {index}: {exc}" if len(lines) > 1 else str(exc))
                    continue
                good.append((value, ts, record.partition, record.offset))
            if bad:
                rejections.append(Rejection(record, "; ".join(bad)))
        await self.store.keep(good)
        return rejections
