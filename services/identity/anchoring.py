"""Consent receipts anchored on the chain, so that a citizen can prove what they agreed to and when.

Identity signs a receipt for every consent change (`services.identity.api.consents`) and keeps each one
(``consent_receipts``). Every ``IDENTITY_ANCHOR_INTERVAL_S`` it takes the receipts not anchored yet, in order,
computes the RFC 9162 Merkle root of their JCS bytes, signs an anchor ``{"anchorer", "kind":
"consent-receipts", "root", "size", "issued_at", "sig"}`` with its city key (which holds the ledger's
``consent-anchor`` role) and posts it to the ledger (``POST /v1/anchors``), which puts it on the chain. It then
keeps, per receipt, the anchor's transaction id, its leaf index and its inclusion path: a person asks for them
(``POST /v1/consents/receipts/proof``, signed) and checks them against the ledger's signed checkpoint
(`services.ledger.anchors.verify_receipt`). Only the root is public; the receipts stay here.

An anchor is a function of its receipts alone (``issued_at`` is the last receipt's ``changed_at``): after a
crash between the ledger's answer and the rows being marked, the same batch is anchored again as the same
anchor, and the ledger answers with the original transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import signing
from services.common.signing import Keypair
from services.identity.service_client import ServiceRefusedError, ServiceUnavailableError
from services.identity.tables import consent_receipts
from services.ledger.anchors import batch_paths, batch_root

log = logging.getLogger(__name__)

KIND = "consent-receipts"
MAX_BATCH = 10_000

Submit = Callable[[dict[str, Any]], Awaitable[str]]
"""Puts a signed anchor on the chain and returns its transaction id."""


def anchor_of(receipts: list[Mapping[str, Any]], key: Keypair) -> dict[str, Any]:
    """The signed anchor of a batch of signed receipts, in order."""
    root = batch_root([signing.canonical_bytes(dict(r)) for r in receipts])
    body = {
        "anchorer": key.did,
        "kind": KIND,
        "root": root.hex(),
        "size": len(receipts),
        "issued_at": receipts[-1]["changed_at"],
    }
    return key.sign(body)


async def anchor_pending(engine: AsyncEngine, key: Keypair, submit: Submit) -> int:
    """Anchor the receipts not anchored yet (at most `MAX_BATCH`); the number anchored."""
    async with engine.connect() as conn:
        rows = list(
            (
                await conn.execute(
                    select(consent_receipts.c.seq, consent_receipts.c.receipt)
                    .where(consent_receipts.c.anchor_tx_id.is_(None))
                    .order_by(consent_receipts.c.seq)
                    .limit(MAX_BATCH)
                )
            ).mappings()
        )
    if not rows:
        return 0
    receipts = [row["receipt"] for row in rows]
    anchor = anchor_of(receipts, key)
    tx_id = await submit(anchor)
    paths = batch_paths([signing.canonical_bytes(dict(r)) for r in receipts])
    async with engine.begin() as conn:
        for index, (row, path) in enumerate(zip(rows, paths, strict=True)):
            await conn.execute(
                update(consent_receipts)
                .where(consent_receipts.c.seq == row["seq"])
                .values(anchor_tx_id=tx_id, anchor=anchor, leaf_index=index, path=[h.hex() for h in path])
            )
    return len(rows)


async def receipt_proof(engine: AsyncEngine, receipt_id: str, subject: str) -> Mapping[str, Any] | None:
    """The receipt `receipt_id` of `subject` with where it is anchored (None: no such receipt of theirs)."""
    async with engine.connect() as conn:
        row = (
            (
                await conn.execute(
                    select(consent_receipts).where(
                        consent_receipts.c.receipt_id == receipt_id, consent_receipts.c.subject == subject
                    )
                )
            )
            .mappings()
            .first()
        )
    return row


async def anchor_forever(engine: AsyncEngine, key: Keypair, submit: Submit, interval_s: float) -> None:
    """`anchor_pending` every `interval_s`; a ledger or database that does not answer is retried next time."""
    while True:
        try:
            await anchor_pending(engine, key, submit)
        except (ServiceUnavailableError, SQLAlchemyError, OSError) as exc:
            log.warning("consent receipts not anchored yet (retried): %s", exc)
        except ServiceRefusedError as exc:  # e.g. the key does not hold the consent-anchor role on this chain
            log.error("the ledger refused to anchor consent receipts (retried): %s", exc)
        except Exception:
            log.exception("anchoring consent receipts failed (retried)")
        await asyncio.sleep(interval_s)
