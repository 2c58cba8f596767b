"""Rewards' evidence, off the chain: reading the disclosures the ledger kept when it settled each reward
(`services.ledger.rewards.Disclosure`), for the wallet a reward paid and for auditors, and erasing a person's.

A disclosure is what opens the commitment in a reward's public record: the salt, the readings envelope ingest
attested (its exact bytes) and ingest's attestation. Erasing empties all three and keeps when; the public
record, which holds only the commitment, still verifies, and an auditor's replay then checks that reward as the
public does. A reward of a wallet erased before it settles (it waited on city.rewards.v1) is stored with its
disclosure erased already (`LedgerStore`), so an erasure also holds for what the wallet earns afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import asyncpg
import orjson

from services.ledger.authority_rows import AUTHORITY_LOCK
from services.ledger.store import LedgerStore, NotFoundError, OutOfRangeError

MAX_DISCLOSURES = 1000
"""Most disclosures one request returns (a client asks again from where the answer stopped)."""


async def in_leaf_range(
    store: LedgerStore,
    table: Literal["disclosures", "memos"],
    start: int,
    end: int,
    as_json: Callable[[Mapping[str, Any]], dict[str, Any]],
) -> tuple[list[dict[str, Any]], int | None]:
    """The off-chain rows of `table` (keyed by tx_id) of the transactions among leaves ``start <= i < end``, in
    leaf order, each as `as_json` gives it with its ``leaf_index``, at most `MAX_DISCLOSURES`, and where to ask
    again (None: all given); `OutOfRangeError` unless ``0 <= start < end <= latest tree size``."""
    async with store.connection() as conn:
        latest = await conn.fetchval("SELECT tree_size FROM blocks ORDER BY height DESC LIMIT 1") or 0
        if not 0 <= start < end <= latest:
            raise OutOfRangeError(f"need 0 <= start < end <= {latest} (the latest tree size)")
        rows = await conn.fetch(
            f"""SELECT l.leaf_index, o.* FROM leaves l JOIN transactions t ON t.seq = l.seq
                JOIN {table} o ON o.tx_id = t.tx_id
                WHERE l.leaf_index >= $1 AND l.leaf_index < $2 ORDER BY l.leaf_index LIMIT $3""",
            start,
            end,
            MAX_DISCLOSURES + 1,
        )
    more = len(rows) > MAX_DISCLOSURES
    rows = rows[:MAX_DISCLOSURES]
    found = [{"leaf_index": r["leaf_index"], **as_json(r)} for r in rows]
    return found, (rows[-1]["leaf_index"] + 1 if more else None)


def disclosure_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A disclosure as served: its salt, envelope (text) and ingest's attestation, or when it was erased."""
    if row["erased_at"] is not None:
        return {"tx_id": row["tx_id"], "erased_at": _rfc3339(row["erased_at"])}
    return {"tx_id": row["tx_id"], **orjson.loads(row["disclosure"])}


class DisclosureReads:
    """The ledger database's disclosures (the rest of the ledger's state is `LedgerStore`'s)."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def of_transaction(self, tx_id: str) -> tuple[str, dict[str, Any]]:
        """(the wallet it paid, the disclosure) of a reward transaction; raises `NotFoundError`."""
        async with self.store.connection() as conn:
            row = await conn.fetchrow("SELECT * FROM disclosures WHERE tx_id = $1", tx_id)
        if row is None:
            raise NotFoundError(f"no reward {tx_id} with a disclosure")
        return row["wallet"], disclosure_json(row)

    async def of_leaves(self, start: int, end: int) -> tuple[list[dict[str, Any]], int | None]:
        """The disclosures of the rewards among leaves ``start <= i < end`` in leaf order, each with its
        ``leaf_index``, at most `MAX_DISCLOSURES`, and where to ask again (None: all given);
        `OutOfRangeError` unless ``0 <= start < end <= latest tree size``."""
        return await in_leaf_range(self.store, "disclosures", start, end, disclosure_json)

    async def erase_wallet(self, wallet: str, at: datetime) -> int:
        """Erase the disclosures of every reward that paid `wallet`: how many were erased now."""
        async with self.store.connection() as conn:
            return await _erase(conn, wallet, at)

    @staticmethod
    async def erase_settled(conn: asyncpg.Connection, wallet: str, at: datetime) -> int:
        """In the caller's transaction, which then records the erasure of `wallet` in ``erasures``: wait for
        the settlements in flight to commit (`AUTHORITY_LOCK`, taken exclusively, which each settlement storing
        a disclosure holds shared) and erase what they stored of `wallet`; how many. A settlement after the
        transaction sees the erasure and stores the wallet's disclosures erased, so none is kept whole
        however the two interleave. Held only for this pass: `erase_wallet` erases the bulk before."""
        await conn.execute("SELECT pg_advisory_xact_lock($1)", AUTHORITY_LOCK)
        return await _erase(conn, wallet, at)


async def _erase(conn: asyncpg.Connection, wallet: str, at: datetime) -> int:
    status = await conn.execute(
        """UPDATE disclosures SET disclosure = NULL, erased_at = $2
           WHERE wallet = $1 AND erased_at IS NULL""",
        wallet,
        at,
    )
    return int(status.rsplit(" ", 1)[-1])


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
