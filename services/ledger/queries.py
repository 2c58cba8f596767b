"""Reads of the ledger's database for its API: blocks, balances, an account's history, a transaction's record
and the chain's Merkle proofs (read from the stored nodes, O(log n) rows a proof)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.common import merkle
from services.common.events import rfc3339
from services.ledger import chain, tree
from services.ledger.blocks import WALLETS_LIKE, latest_header, stored_nodes
from services.ledger.store import LedgerStore, NotFoundError, OutOfRangeError

MAX_SEQ = 2**63 - 1
"""Above every settled transaction's seq: an account's history from its newest."""


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    audit_path: list[bytes]


class LedgerQueries:
    """What the ledger's API reads, on the ledger's database."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def latest_header(self) -> chain.BlockHeader | None:
        """The latest sealed block's header; None before the first block."""
        async with self.store.connection() as conn:
            return await latest_header(conn)

    async def block(self, height: int) -> tuple[chain.BlockHeader, list[str]]:
        """A block's header and its transaction ids in leaf order; raises `NotFoundError`."""
        async with self.store.connection() as conn:
            row = await conn.fetchrow(
                """SELECT b.header,
                          COALESCE((SELECT p.tree_size FROM blocks p WHERE p.height = b.height - 1), 0) AS first_leaf
                   FROM blocks b WHERE b.height = $1""",
                height,
            )
            if row is None:
                raise NotFoundError(f"no block at height {height}")
            header = chain.BlockHeader.from_json(json.loads(row["header"]))
            tx_ids = await conn.fetch(
                """SELECT t.tx_id FROM leaves l JOIN transactions t ON t.seq = l.seq
                   WHERE l.leaf_index >= $1 AND l.leaf_index < $2 ORDER BY l.leaf_index""",
                row["first_leaf"],
                header.tree_size,
            )
        return header, [r["tx_id"] for r in tx_ids]

    async def balances(self, account: str) -> dict[str, int]:
        """The account's balance per currency it ever held."""
        async with self.store.connection() as conn:
            rows = await conn.fetch("SELECT currency, balance FROM balances WHERE account = $1", account)
        return {r["currency"]: r["balance"] for r in rows}

    async def last_nonce(self, signer: str) -> int:
        """The last nonce the ledger accepted from `signer` (a transfer's sender or an issuer), 0 if none."""
        async with self.store.connection() as conn:
            return await conn.fetchval("SELECT nonce FROM nonces WHERE account = $1", signer) or 0

    async def top_wallets(self, currency: str, limit: int) -> list[tuple[str, int]]:
        """The wallets (system accounts left out) holding the most of `currency`."""
        async with self.store.connection() as conn:
            rows = await conn.fetch(
                """SELECT account, balance FROM balances WHERE currency = $1 AND account LIKE $2
                   ORDER BY balance DESC, account LIMIT $3""",
                currency,
                WALLETS_LIKE,
                limit,
            )
        return [(r["account"], r["balance"]) for r in rows]

    async def account_transactions(
        self, account: str, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The account's transactions, newest first, those with ``seq < before``; each with its changes."""
        async with self.store.connection() as conn:
            rows = await conn.fetch(
                """SELECT t.seq, t.tx_id, t.type, t.settled_at, l.leaf_index, l.block_height, p.currency, p.amount
                   FROM (SELECT DISTINCT seq FROM postings WHERE account = $1 AND seq < $2
                         ORDER BY seq DESC LIMIT $3) s
                   JOIN transactions t ON t.seq = s.seq
                   JOIN postings p ON p.seq = s.seq AND p.account = $1
                   LEFT JOIN leaves l ON l.seq = s.seq
                   ORDER BY t.seq DESC, p.currency""",
                account,
                MAX_SEQ if before is None else before,
                limit,
            )
        items: dict[int, dict[str, Any]] = {}
        for r in rows:
            item = items.setdefault(
                r["seq"],
                {
                    "tx_id": r["tx_id"],
                    "leaf_index": r["leaf_index"],
                    "block_height": r["block_height"],
                    "type": r["type"],
                    "changes": {},
                    "settled_at": rfc3339(r["settled_at"]),
                    "seq": r["seq"],
                },
            )
            item["changes"][r["currency"]] = r["amount"]
        return list(items.values())

    async def transaction_record(self, tx_id: str) -> bytes:
        """The exact leaf bytes (JCS of the record) of a transaction; raises `NotFoundError`."""
        async with self.store.connection() as conn:
            record = await conn.fetchval("SELECT record FROM transactions WHERE tx_id = $1", tx_id)
        if record is None:
            raise NotFoundError(f"no transaction {tx_id}")
        return record

    async def inclusion_proof(self, tx_id: str, tree_size: int | None = None) -> InclusionProof:
        """The inclusion proof of a sealed transaction in the tree of `tree_size` (default: the latest).

        Raises `NotFoundError` (unknown or not sealed) or `OutOfRangeError` (size beyond the latest sealed
        size, or not covering the leaf). Reads O(log n) stored nodes in one query.
        """
        async with self.store.connection() as conn:
            row = await conn.fetchrow(
                """SELECT t.leaf_hash, l.leaf_index FROM transactions t LEFT JOIN leaves l ON l.seq = t.seq
                   WHERE t.tx_id = $1""",
                tx_id,
            )
            if row is None:
                raise NotFoundError(f"no transaction {tx_id}")
            index = row["leaf_index"]
            if index is None:
                raise NotFoundError(f"transaction {tx_id} is not sealed into a block yet")
            latest = await _latest_tree_size(conn)
            size = latest if tree_size is None else tree_size
            if size > latest:
                raise OutOfRangeError(f"tree_size {size} is beyond the latest checkpoint's {latest}")
            if size <= index:
                raise OutOfRangeError(f"a tree of {size} leaves does not hold leaf {index}")

            def build(subtree: merkle.SubtreeFn) -> list[bytes]:
                return merkle.inclusion_proof(index, size, subtree)

            nodes = await stored_nodes(conn, tree.nodes_read_by(build))
        return InclusionProof(index, size, row["leaf_hash"], tree.run_on_nodes(build, nodes))

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The consistency proof between tree sizes ``1 <= first <= second <= latest``; else `OutOfRangeError`."""
        async with self.store.connection() as conn:
            latest = await _latest_tree_size(conn)
            if not 1 <= first <= second <= latest:
                raise OutOfRangeError(f"need 1 <= first <= second <= {latest} (the latest tree size)")

            def build(subtree: merkle.SubtreeFn) -> list[bytes]:
                return merkle.consistency_proof(first, second, subtree)

            nodes = await stored_nodes(conn, tree.nodes_read_by(build))
        return tree.run_on_nodes(build, nodes)


async def _latest_tree_size(conn: asyncpg.Connection) -> int:
    return await conn.fetchval("SELECT tree_size FROM blocks ORDER BY height DESC LIMIT 1") or 0
