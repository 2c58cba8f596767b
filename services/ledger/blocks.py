"""Blocks in the ledger's database: sealing pending transactions into the next signed block, and the outbox of
sealed blocks whose events are not yet published (`services.ledger.sealer` drives both).

Sealing is one database transaction holding a transaction-scoped advisory lock (`SEALER_LOCK`), so however
many ledger processes run, one seals at a time and the chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from services.common.events import now_rfc3339
from services.common.signing import Keypair
from services.ledger import chain, tree
from services.ledger.accounts import WALLET_PREFIX
from services.ledger.store import LedgerStore

SEALER_LOCK = int.from_bytes(hashlib.sha256(b"smartcity.ledger.sealer").digest()[:8], "big", signed=True)
"""The advisory lock key the sealer holds for the length of its transaction (advisory locks are per
database, so ledgers of different databases never contend)."""

WALLETS_LIKE = WALLET_PREFIX + "%"
"""A LIKE pattern matching wallets' accounts (system accounts left out)."""


@dataclass(frozen=True)
class SealedBlock:
    header: chain.BlockHeader
    first_leaf: int

    @property
    def size(self) -> int:
        """Transactions in the block."""
        return self.header.tree_size - self.first_leaf


@dataclass(frozen=True)
class SettledPosting:
    """A sealed transaction's posting on a wallet: one ``city.ledger.settled.v1`` event."""

    tx_id: str
    type: str
    wallet: str
    currency: str
    delta: int
    leaf_index: int


async def latest_header(conn: asyncpg.Connection) -> chain.BlockHeader | None:
    """The latest sealed block's header; None before the first block."""
    raw = await conn.fetchval("SELECT header FROM blocks ORDER BY height DESC LIMIT 1")
    return None if raw is None else chain.BlockHeader.from_json(json.loads(raw))


async def stored_nodes(conn: asyncpg.Connection, keys: Iterable[tree.NodeKey]) -> dict[tree.NodeKey, bytes]:
    """The stored Merkle nodes at `keys`, in one query; a missing one is a broken database (RuntimeError)."""
    keys = list(keys)
    if not keys:
        return {}
    rows = await conn.fetch(
        """SELECT n.level, n.idx, n.hash
           FROM tree_nodes n JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, idx)
             ON n.level = k.level AND n.idx = k.idx""",
        [level for level, _ in keys],
        [index for _, index in keys],
    )
    nodes = {(r["level"], r["idx"]): r["hash"] for r in rows}
    if len(nodes) != len(keys):
        missing = sorted(set(keys) - set(nodes))
        raise RuntimeError(f"the Merkle tree is missing stored nodes {missing[:5]}")
    return nodes


class BlockStore:
    """Sealing and the publication outbox, on the ledger's database."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def seal(self, keypair: Keypair, max_txs: int) -> SealedBlock | None:
        """Seal up to `max_txs` pending transactions into the next block; None if nothing is pending or
        another process is sealing right now.

        Pending transactions are taken in settlement order and given consecutive leaf indexes; the newly
        complete Merkle nodes, the leaves and the signed header are written in the same transaction.
        """
        async with self.store.connection() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEALER_LOCK):
                return None
            rows = await conn.fetch(
                """SELECT p.seq, t.leaf_hash FROM pending p JOIN transactions t ON t.seq = p.seq
                   ORDER BY p.seq LIMIT $1""",
                max_txs,
            )
            if not rows:
                return None
            previous = await latest_header(conn)
            size = previous.tree_size if previous else 0
            frontier = await stored_nodes(conn, tree.frontier(size))
            new_nodes, root = tree.append(size, [r["leaf_hash"] for r in rows], frontier)
            header = chain.next_header(
                previous, keypair, tree_size=size + len(rows), root_hash=root, timestamp=now_rfc3339()
            )
            seqs = [r["seq"] for r in rows]
            await conn.execute("DELETE FROM pending WHERE seq = ANY($1::bigint[])", seqs)
            await conn.copy_records_to_table(
                "leaves",
                records=[(size + i, seq, header.height) for i, seq in enumerate(seqs)],
                columns=["leaf_index", "seq", "block_height"],
            )
            await conn.copy_records_to_table(
                "tree_nodes", records=new_nodes, columns=["level", "idx", "hash"]
            )
            await conn.execute(
                "INSERT INTO blocks (height, tree_size, header) VALUES ($1, $2, $3)",
                header.height,
                header.tree_size,
                header.canonical_bytes(),
            )
        return SealedBlock(header, first_leaf=size)

    async def unpublished_blocks(self, limit: int = 100) -> list[SealedBlock]:
        """Sealed blocks whose events are not yet published (acknowledged by the broker), oldest first."""
        async with self.store.connection() as conn:
            rows = await conn.fetch(
                """SELECT b.header,
                          COALESCE((SELECT p.tree_size FROM blocks p WHERE p.height = b.height - 1), 0) AS first_leaf
                   FROM blocks b WHERE b.published_at IS NULL ORDER BY b.height LIMIT $1""",
                limit,
            )
        return [
            SealedBlock(chain.BlockHeader.from_json(json.loads(r["header"])), r["first_leaf"]) for r in rows
        ]

    async def wallet_postings(self, block: SealedBlock) -> list[SettledPosting]:
        """The postings on wallets (not system accounts) of the block's transactions, in leaf order."""
        async with self.store.connection() as conn:
            rows = await conn.fetch(
                """SELECT l.leaf_index, t.tx_id, t.type, p.account, p.currency, p.amount
                   FROM leaves l JOIN transactions t ON t.seq = l.seq JOIN postings p ON p.seq = l.seq
                   WHERE l.leaf_index >= $1 AND l.leaf_index < $2 AND p.account LIKE $3
                   ORDER BY l.leaf_index, p.account, p.currency""",
                block.first_leaf,
                block.header.tree_size,
                WALLETS_LIKE,
            )
        return [
            SettledPosting(r["tx_id"], r["type"], r["account"], r["currency"], r["amount"], r["leaf_index"])
            for r in rows
        ]

    async def mark_published(self, height: int) -> None:
        """Record that the block's events are published (it leaves the outbox)."""
        async with self.store.connection() as conn:
            await conn.execute("UPDATE blocks SET published_at = now() WHERE height = $1", height)
