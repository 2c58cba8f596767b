"""The ledger's database access for payments: signed transfers and issuer commands judged by the payment rules
(`services.ledger.payments`) on facts read under lock, their effects (nonces, grants, freezes), AID grants'
expiry, and the merchant facts the rules read. Settlement itself is `LedgerStore.settle_in`'s."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.common.roles import Role
from services.ledger import payments
from services.ledger.authority_rows import read_authority
from services.ledger.store import LedgerStore, Receipt, settled_receipt
from services.ledger.transactions import Transaction


@dataclass(frozen=True)
class Submission:
    """A signed transfer or issuer command to judge (`plan`) on facts read under lock."""

    signed: Mapping[str, Any]
    record_key: str
    """Where the record holds the signed object ("transfer" or "command")."""
    signer: str
    tx_id: str
    plan: Callable[[payments.Facts], payments.Planned]
    recipient: str | None = None
    grant_id: str | None = None
    settled: Callable[[asyncpg.Connection, payments.Planned], Awaitable[None]] | None = None
    """More writes in the database transaction that settles it (never on a retry): its memo's disclosure,
    kept off the chain (`services.ledger.memos`)."""


class PaymentStore:
    """Payments on the ledger's database (see the module)."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def submit(self, request: Submission) -> Receipt:
        """Judge and settle one signed transfer or issuer command in one database transaction.

        The signer's nonce row is locked first, so two submissions by one signer (from any number of
        ledger processes) are judged one after the other on up-to-date facts: none can overspend or reuse
        a nonce. A retry of an already settled object returns its original receipt. Raises `RejectedError`.
        """
        async with self.store.connection() as conn, conn.transaction():
            held = await read_authority(conn)
            await conn.execute(
                "INSERT INTO nonces (account, nonce) VALUES ($1, 0) ON CONFLICT (account) DO NOTHING",
                request.signer,
            )
            last = await conn.fetchval(
                "SELECT nonce FROM nonces WHERE account = $1 FOR UPDATE", request.signer
            )
            existing = await settled_receipt(conn, request.tx_id, request.record_key, request.signed)
            if existing is not None:
                return existing
            parties = [a for a in (request.signer, request.recipient) if a]
            frozen = {
                r["account"]
                for r in await conn.fetch(
                    "SELECT account FROM frozen WHERE account = ANY($1::text[])", parties
                )
            }
            merchant = None
            if request.recipient:
                row = await conn.fetchrow("SELECT * FROM merchants WHERE wallet = $1", request.recipient)
                merchant = None if row is None else _merchant(row)
            grants = [
                _grant(r)
                for r in await conn.fetch(
                    """SELECT * FROM grants WHERE wallet = $1 AND closed IS NULL
                       ORDER BY grant_id FOR UPDATE""",
                    request.signer,
                )
            ]
            recipient_currencies: frozenset[str] = frozenset()
            aid_holders: frozenset[str] = frozenset()
            if request.recipient:
                recipient_currencies = frozenset(
                    r["currency"]
                    for r in await conn.fetch(
                        "SELECT currency FROM balances WHERE account = $1", request.recipient
                    )
                )
                aid_holders = frozenset(
                    r["wallet"]
                    for r in await conn.fetch(
                        "SELECT DISTINCT wallet FROM grants WHERE wallet = ANY($1::text[])", parties
                    )
                )
            grant = None
            if request.grant_id:
                row = await conn.fetchrow(
                    "SELECT * FROM grants WHERE grant_id = $1 AND closed IS NULL FOR UPDATE", request.grant_id
                )
                grant = None if row is None else _grant(row)
            facts = payments.Facts(
                now=datetime.now(UTC),
                last_nonce=last,
                frozen=frozenset(frozen),
                merchant=merchant,
                grants=grants,
                issuer_keys=held.holders.get(Role.ISSUER, frozenset()),
                grant=grant,
                recipient_currencies=recipient_currencies,
                aid_holders=aid_holders,
            )
            planned = request.plan(facts)
            outcome = await self.store.settle_in(conn, [planned.tx])
            if outcome.rejected:
                raise outcome.rejected[0][1]
            await self._apply_effects(conn, planned)
            if request.settled is not None:
                await request.settled(conn, planned)
            seq = await conn.fetchval("SELECT seq FROM transactions WHERE tx_id = $1", request.tx_id)
        return Receipt(request.tx_id, seq, None, None, True)

    @staticmethod
    async def _apply_effects(conn: asyncpg.Connection, planned: payments.Planned) -> None:
        await conn.execute("UPDATE nonces SET nonce = $2 WHERE account = $1", planned.signer, planned.nonce)
        if planned.draws:
            await conn.execute(
                """UPDATE grants g SET remaining = g.remaining - d.amount
                   FROM unnest($1::text[], $2::bigint[]) AS d(grant_id, amount) WHERE g.grant_id = d.grant_id""",
                [g for g, _ in planned.draws],
                [a for _, a in planned.draws],
            )
        if planned.close_grant:
            await conn.execute(
                "UPDATE grants SET closed = 'revoked' WHERE grant_id = $1", planned.close_grant
            )
        if (grant := planned.new_grant) is not None:
            await conn.execute(
                """INSERT INTO grants (grant_id, wallet, amount, remaining, categories, expires_at)
                   VALUES ($1, $2, $3, $3, $4, $5)""",
                grant.grant_id,
                grant.wallet,
                grant.remaining,
                sorted(grant.categories),
                grant.expires_at,
            )
        if planned.freeze:
            await conn.execute(
                "INSERT INTO frozen (account, tx_id) VALUES ($1, $2) ON CONFLICT (account) DO NOTHING",
                planned.freeze,
                planned.tx.tx_id,
            )
        if planned.unfreeze:
            await conn.execute("DELETE FROM frozen WHERE account = $1", planned.unfreeze)

    async def expire_grants(self, timestamp: str, limit: int = 500) -> list[Transaction]:
        """Return the unspent AID of grants expired by `timestamp` (the records' time) to the aid pool;
        returns the transactions settled.

        Grants are locked with SKIP LOCKED, so ledger processes running this at once share the work, and
        the expiry transaction's id is one per grant, so none is ever returned twice. The cut-off is the
        records' own timestamp, so no expiry on the chain predates its grant's ``expires_at``.
        """
        async with self.store.connection() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT * FROM grants WHERE closed IS NULL AND expires_at <= $2
                   ORDER BY expires_at, grant_id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                limit,
                payments.parse_time(timestamp),
            )
            if not rows:
                return []
            grants = [_grant(r) for r in rows]
            outcome = await self.store.settle_in(
                conn, [payments.plan_expiry(g, timestamp) for g in grants if g.remaining > 0]
            )
            await conn.execute(
                "UPDATE grants SET remaining = 0, closed = 'expired' WHERE grant_id = ANY($1::text[])",
                [g.grant_id for g in grants],
            )
        return outcome.settled

    async def fold_merchants(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Fold ``city.merchants.v1`` values into the latest per wallet (a later ``updated_at`` wins)."""
        latest: dict[str, Mapping[str, Any]] = {}
        for value in values:
            held = latest.get(value["wallet"])
            if held is None or payments.parse_time(held["updated_at"]) <= payments.parse_time(
                value["updated_at"]
            ):
                latest[value["wallet"]] = value
        if not latest:
            return
        items = list(latest.values())
        async with self.store.connection() as conn:
            await conn.execute(
                """INSERT INTO merchants (wallet, category, locally_owned, verified, active, accepts, updated_at)
                   SELECT wallet, category, locally_owned, verified, active, string_to_array(accepts, ','),
                          updated_at
                   FROM unnest($1::text[], $2::text[], $3::bool[], $4::bool[], $5::bool[], $6::text[],
                               $7::timestamptz[])
                        AS u(wallet, category, locally_owned, verified, active, accepts, updated_at)
                   ON CONFLICT (wallet) DO UPDATE SET category = EXCLUDED.category,
                     locally_owned = EXCLUDED.locally_owned, verified = EXCLUDED.verified,
                     active = EXCLUDED.active,
                     accepts = EXCLUDED.accepts, updated_at = EXCLUDED.updated_at
                   WHERE merchants.updated_at <= EXCLUDED.updated_at""",
                [v["wallet"] for v in items],
                [v["category"] for v in items],
                [v["locally_owned"] for v in items],
                [v["verified"] for v in items],
                [v.get("active", True) for v in items],
                [",".join(v["accepts"]) for v in items],
                [payments.parse_time(v["updated_at"]) for v in items],
            )


def _merchant(row: asyncpg.Record) -> payments.Merchant:
    return payments.Merchant(
        row["wallet"],
        row["category"],
        row["locally_owned"],
        row["active"],
        frozenset(row["accepts"]),
        row["verified"],
    )


def _grant(row: asyncpg.Record) -> payments.Grant:
    return payments.Grant(
        row["grant_id"], row["wallet"], row["remaining"], frozenset(row["categories"]), row["expires_at"]
    )
