"""A person's erasure at the ledger (`services.common.erasure`): the evidence of the rewards that paid their
wallet goes; the chain keeps each reward's commitment and still verifies, in public and in auditor mode.

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
from services.ledger.store import LedgerStore


def erasure_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """An erasure as the ledger answers it."""
    return {
        "request_id": row["request_id"],
        "did": row["wallet"],
        "disclosures": row["disclosures"],
        "erased_at": rfc3339(row["erased_at"]),
    }


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
        erased = await DisclosureReads(self.store).erase_wallet(request.did, at)
        async with self.store.connection() as conn:
            row = await conn.fetchrow(
                """INSERT INTO erasures (request_id, wallet, request, disclosures, erased_at)
                   VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING RETURNING *""",
                request_id,
                request.did,
                orjson.dumps(dict(signed)).decode(),
                erased,
                at,
            )
            if row is None:  # the same request, erased concurrently: its record stands
                row = await conn.fetchrow("SELECT * FROM erasures WHERE request_id = $1", request_id)
                return erasure_json(row), False
        return erasure_json(row), True
