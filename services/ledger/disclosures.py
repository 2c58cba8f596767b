"""Rewards' evidence, off the chain: reading the disclosures the ledger kept when it settled each reward
(`services.ledger.rewards.Disclosure`), for the wallet a reward paid and for auditors, and erasing a person's.

A disclosure is what opens the commitment in a reward's public record: the salt, the readings envelope ingest
attested (its exact bytes) and ingest's attestation. Erasing empties all three and keeps when; the public
record, which holds only the commitment, still verifies, and an auditor's replay then checks that reward as the
public does.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from services.ledger.store import LedgerStore, NotFoundError, OutOfRangeError

MAX_DISCLOSURES = 1000
"""Most disclosures one request returns (a client asks again from where the answer stopped)."""


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
        async with self.store.connection() as conn:
            latest = await conn.fetchval("SELECT tree_size FROM blocks ORDER BY height DESC LIMIT 1") or 0
            if not 0 <= start < end <= latest:
                raise OutOfRangeError(f"need 0 <= start < end <= {latest} (the latest tree size)")
            rows = await conn.fetch(
                """SELECT l.leaf_index, d.* FROM leaves l JOIN transactions t ON t.seq = l.seq
                   JOIN disclosures d ON d.tx_id = t.tx_id
                   WHERE l.leaf_index >= $1 AND l.leaf_index < $2 ORDER BY l.leaf_index LIMIT $3""",
                start,
                end,
                MAX_DISCLOSURES + 1,
            )
        more = len(rows) > MAX_DISCLOSURES
        rows = rows[:MAX_DISCLOSURES]
        found = [{"leaf_index": r["leaf_index"], **disclosure_json(r)} for r in rows]
        return found, (rows[-1]["leaf_index"] + 1 if more else None)

    async def erase_wallet(self, wallet: str, at: datetime) -> int:
        """Erase the disclosures of every reward that paid `wallet`: how many were erased now."""
        async with self.store.connection() as conn:
            status = await conn.execute(
                """UPDATE disclosures SET disclosure = NULL, erased_at = $2
                   WHERE wallet = $1 AND erased_at IS NULL""",
                wallet,
                at,
            )
        return int(status.rsplit(" ", 1)[-1])


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
