"""Memos off the chain: the disclosure that opens a transfer's or issuer command's ``memo_digest``
(`services.common.memos`), kept when it settles, served to its parties and to auditors, erased with a
party's data.

The chain holds the signed object, so only the digest; the disclosure (salt and text) is written here, in the
database transaction that settles the object (`keeping`, a `Submission.settled` hook), with the parties who may
read it: the signer and the accounts the object names or pays (a transfer's sender and recipient; an issuer
command's issuer and the wallet it mints to, grants to, freezes or revokes from). A retry settles nothing and
writes nothing. Erasing empties the disclosure and keeps when; the chain, holding only the digest, still
verifies. A memo one of whose parties was erased before it settles is stored erased, as a reward's disclosure
is, so an erasure holds for what the wallet is party to afterwards too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import asyncpg

from services.common import memos
from services.common.events import rfc3339
from services.common.sdjwt import digest
from services.ledger.accounts import WALLET_PREFIX
from services.ledger.disclosures import in_leaf_range
from services.ledger.payments import Planned
from services.ledger.store import LedgerStore, NotFoundError

PARTY_FIELDS = ("from", "to", "issuer", "wallet", "holder", "account")
"""Members of a signed transfer or command naming an account a party to it."""


def parties(signed: Mapping[str, Any], planned: Planned) -> list[str]:
    """The wallets who may read a memo: those the signed object names, and those its postings move money of
    (a revoke names a grant, whose holder it takes AID from)."""
    named = {v for f in PARTY_FIELDS if isinstance(v := signed.get(f), str)}
    named |= {p.account for p in planned.tx.postings}
    return sorted(a for a in named if a.startswith(WALLET_PREFIX))


def keeping(
    signed: Mapping[str, Any], disclosure: str
) -> Callable[[asyncpg.Connection, Planned], Awaitable[None]]:
    """The `Submission.settled` hook writing the memo's disclosure of `signed` (already checked against its
    ``memo_digest``) in the transaction that settles it; at most one row per transaction."""

    async def keep(conn: asyncpg.Connection, planned: Planned) -> None:
        # This transaction holds AUTHORITY_LOCK shared, and an erasure records itself holding it exclusively:
        # an erasure of a party either committed before, and the memo is stored erased (as of it), or erases
        # the memo once this commits (`MemoReads.erase_settled`). Either way no memo outlives it.
        await conn.execute(
            """INSERT INTO memos (tx_id, parties, disclosure, erased_at)
               SELECT $1, $2, CASE WHEN e.at IS NULL THEN $3 END, e.at
               FROM (SELECT max(erased_at) AS at FROM erasures
                     WHERE wallet = ANY($2::text[]) OR aid_holder = ANY($2::text[])) e
               ON CONFLICT (tx_id) DO NOTHING""",
            planned.tx.tx_id,
            parties(signed, planned),
            disclosure,
        )

    return keep


def memo_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A memo as served: its disclosure, the digest it opens and its text; or when it was erased."""
    if row["erased_at"] is not None:
        return {"tx_id": row["tx_id"], "erased_at": rfc3339(row["erased_at"])}
    disclosure = row["disclosure"]
    return {
        "tx_id": row["tx_id"],
        memos.DIGEST_FIELD: digest(disclosure),
        memos.DISCLOSURE_FIELD: disclosure,
        "memo": memos.memo_text(disclosure),
    }


class MemoReads:
    """The ledger database's memos (the rest of the ledger's state is `LedgerStore`'s)."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def of_transaction(self, tx_id: str) -> tuple[list[str], dict[str, Any]]:
        """(its parties, the memo) of a transaction; raises `NotFoundError` if it has none."""
        async with self.store.connection() as conn:
            row = await conn.fetchrow("SELECT * FROM memos WHERE tx_id = $1", tx_id)
        if row is None:
            raise NotFoundError(f"no transaction {tx_id} with a memo")
        return list(row["parties"]), memo_json(row)

    async def of_leaves(self, start: int, end: int) -> tuple[list[dict[str, Any]], int | None]:
        """The memos of the transactions among leaves ``start <= i < end`` in leaf order, each with its
        ``leaf_index``, at most `MAX_DISCLOSURES`, and where to ask again (None: all given); `OutOfRangeError`
        unless ``0 <= start < end <= latest tree size``. For an auditor's replay."""
        return await in_leaf_range(self.store, "memos", start, end, memo_json)

    async def erase_party(self, wallet: str, at: datetime) -> int:
        """Erase the memos of every transaction `wallet` is a party to: how many were erased now."""
        async with self.store.connection() as conn:
            return await self.erase_settled(conn, wallet, at)

    @staticmethod
    async def erase_settled(conn: asyncpg.Connection, wallet: str, at: datetime) -> int:
        """`erase_party` in the caller's transaction, which holds `AUTHORITY_LOCK` exclusively and records the
        erasure (`DisclosureReads.erase_settled`): a submission settling meanwhile either committed its memo
        before (erased here) or sees the erasure and stores its memo erased (`keeping`)."""
        status = await conn.execute(
            """UPDATE memos SET disclosure = NULL, erased_at = $2
               WHERE parties @> ARRAY[$1]::text[] AND erased_at IS NULL""",
            wallet,
            at,
        )
        return int(status.rsplit(" ", 1)[-1])
