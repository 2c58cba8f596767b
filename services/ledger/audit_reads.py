"""What an auditor reads in bulk: the chain's leaves in ranges (as Certificate Transparency logs serve their
entries) and every account's balance as of a tree size, so a verifier can replay a whole chain, live, in a few
requests per thousand records; and what anyone may compare a replay with: each currency's totals."""

from __future__ import annotations

from dataclasses import dataclass

from services.ledger.store import LedgerStore, OutOfRangeError

MAX_LEAVES = 1000
"""Most leaves one request returns (a client asks again from where the answer stopped)."""
MAX_BALANCES = 1000


@dataclass(frozen=True)
class BalanceRow:
    account: str
    currency: str
    balance: int


class AuditReads:
    """Bulk reads of the ledger's database for auditors (read-only)."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def leaves(self, start: int, end: int) -> list[bytes]:
        """The exact bytes of leaves ``start <= i < end`` in order, at most `MAX_LEAVES`; `OutOfRangeError`
        unless ``0 <= start < end <= latest tree size``."""
        async with self.store.connection() as conn:
            latest = await conn.fetchval("SELECT tree_size FROM blocks ORDER BY height DESC LIMIT 1") or 0
            if not 0 <= start < end <= latest:
                raise OutOfRangeError(f"need 0 <= start < end <= {latest} (the latest tree size)")
            rows = await conn.fetch(
                """SELECT t.record FROM leaves l JOIN transactions t ON t.seq = l.seq
                   WHERE l.leaf_index >= $1 AND l.leaf_index < $2 ORDER BY l.leaf_index""",
                start,
                min(end, start + MAX_LEAVES),
            )
        return [r["record"] for r in rows]

    async def balances_at(self, tree_size: int, after: str, limit: int) -> list[BalanceRow]:
        """Every account's non-zero balance per currency summed over the postings of leaves below
        `tree_size`, accounts after `after` in order, at most `limit` accounts' rows; `OutOfRangeError` for
        a size beyond the latest."""
        async with self.store.connection() as conn:
            latest = await conn.fetchval("SELECT tree_size FROM blocks ORDER BY height DESC LIMIT 1") or 0
            if not 0 < tree_size <= latest:
                raise OutOfRangeError(f"need 0 < tree_size <= {latest} (the latest tree size)")
            rows = await conn.fetch(
                """WITH accounts AS (
                     SELECT DISTINCT p.account FROM postings p JOIN leaves l ON l.seq = p.seq
                     WHERE l.leaf_index < $1 AND p.account > $2 ORDER BY p.account LIMIT $3)
                   SELECT p.account, p.currency, sum(p.amount)::bigint AS balance
                   FROM postings p JOIN leaves l ON l.seq = p.seq JOIN accounts a ON a.account = p.account
                   WHERE l.leaf_index < $1
                   GROUP BY p.account, p.currency ORDER BY p.account, p.currency""",
                tree_size,
                after,
                limit,
            )
        return [BalanceRow(r["account"], r["currency"], r["balance"]) for r in rows]

    async def totals_at(self, tree_size: int) -> dict[str, dict[str, int]]:
        """Per currency, as of `tree_size`: ``held``, what the accounts with a positive balance hold together
        (the postings of every transaction sum to zero, so this is also what the negative ones, the issuers',
        have issued), and ``accounts``, how many hold it; `OutOfRangeError` for a size beyond the latest."""
        async with self.store.connection() as conn:
            latest = await conn.fetchval("SELECT tree_size FROM blocks ORDER BY height DESC LIMIT 1") or 0
            if not 0 < tree_size <= latest:
                raise OutOfRangeError(f"need 0 < tree_size <= {latest} (the latest tree size)")
            rows = await conn.fetch(
                """SELECT currency, sum(balance)::bigint AS held, count(*) AS accounts FROM (
                     SELECT p.account, p.currency, sum(p.amount) AS balance
                     FROM postings p JOIN leaves l ON l.seq = p.seq WHERE l.leaf_index < $1
                     GROUP BY p.account, p.currency) b
                   WHERE balance > 0 GROUP BY currency ORDER BY currency""",
                tree_size,
            )
        return {r["currency"]: {"held": r["held"], "accounts": r["accounts"]} for r in rows}
