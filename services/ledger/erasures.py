"""A person's erasure at the ledger (`services.common.erasure`): the evidence of the rewards that paid their
wallet goes, and the memos of the transfers and issuer commands their wallet is a party to
(`services.ledger.memos`), and those of their AID holder key when the request names it (and it signed); the
chain keeps each reward's commitment and each memo's digest and still verifies,
in public and in auditor mode.

The request is the person's own, signed by their wallet's did, checked here (not taken on identity's word),
and recorded with what it erased and when: the same request again erases nothing more and gets the same
answer. The chain itself, its postings and balances stay: they are the city's books, and hold no reading,
place or registration, only pseudonymous wallets and commitments.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from services.common.erasure import ErasureRequest
from services.common.events import rfc3339
from services.ledger.disclosures import DisclosureReads
from services.ledger.memos import MemoReads
from services.ledger.store import LedgerStore


def erasure_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An erasure as the ledger answers it."""
    answer = {
        "request_id": row["request_id"],
        "did": row["wallet"],
        "disclosures": row["disclosures"],
        "memos": row["memos"],
        "erased_at": rfc3339(row["erased_at"]),
    }
    return answer if row["aid_holder"] is None else {**answer, "aid_holder": row["aid_holder"]}


class Erasures:
    """People's erasures in the ledger database."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def erase(
        self, request: ErasureRequest, request_id: str, signed: Mapping[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Erase the evidence of the rewards that paid the request's wallet, once per request: the answer,
        and whether this call erased."""
        async with self.store.connection() as conn:
            done = await conn.fetchrow("SELECT * FROM erasures WHERE request_id = $1", request_id)
        if done is not None:
            return erasure_json(done), False
        at = datetime.now(UTC)
        # Erasing is idempotent (only what is not erased yet), so a call cut short here is simply done again.
        # The AID holder key (when the request names it, it signed it too) made the person's AID payments.
        parties = [request.did] + ([request.aid_holder] if request.aid_holder else [])
        erased = await DisclosureReads(self.store).erase_wallet(request.did, at)
        memos = 0
        for party in parties:
            memos += await MemoReads(self.store).erase_party(party, at)
        async with self.store.connection() as conn, conn.transaction():
            # Rewards settling while this is recorded: each is erased here, or stored erased after it.
            erased += await DisclosureReads.erase_settled(conn, request.did, at)
            for party in parties:
                memos += await MemoReads.erase_settled(conn, party, at)
            row = await conn.fetchrow(
                """INSERT INTO erasures (request_id, wallet, request, disclosures, erased_at, memos, aid_holder)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (request_id) DO NOTHING RETURNING *""",
                request_id,
                request.did,
                orjson.dumps(dict(signed)).decode(),
                erased,
                at,
                memos,
                request.aid_holder,
            )
            if row is None:  # the same request, erased concurrently: its record stands
                row = await conn.fetchrow("SELECT * FROM erasures WHERE request_id = $1", request_id)
                return erasure_json(row), False
        return erasure_json(row), True
