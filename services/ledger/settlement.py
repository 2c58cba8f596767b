"""The settlement consumer's handler: a batch of ``city.rewards.v1`` records -> one database transaction.

Each reward's evidence is re-verified before it may settle (the chain carries only verifiable
authorisations); rewards that fail, that would overdraw the rewards pool, or that conflict with what is
already settled come back as `Rejection`s, which the `BatchConsumer` dead-letters with the reason. Offsets
are committed by the consumer only after this handler returned, i.e. after the database commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.common.events import now_rfc3339
from services.common.kafka import IncomingRecord, Rejection
from services.ledger import metrics
from services.ledger.store import LedgerStore
from services.ledger.transactions import REWARD, RejectedError, Transaction, reward_transaction

log = logging.getLogger(__name__)


def prepare_rewards(
    records: list[IncomingRecord], timestamp: str
) -> tuple[list[tuple[IncomingRecord, Transaction]], list[Rejection]]:
    """Build the transaction of each reward record, or its rejection (CPU-bound: signature checks)."""
    ready: list[tuple[IncomingRecord, Transaction]] = []
    rejections: list[Rejection] = []
    for record in records:
        try:
            ready.append((record, reward_transaction(record.value, timestamp)))
        except RejectedError as exc:
            metrics.REJECTIONS.labels(exc.code).inc()
            rejections.append(Rejection(record, str(exc)))
    return ready, rejections


class RewardSettler:
    """The `BatchConsumer` handler settling rewards; `on_settled(n)` hears how many were settled."""

    def __init__(self, store: LedgerStore, on_settled: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.on_settled = on_settled

    async def __call__(self, records: list[IncomingRecord]) -> list[Rejection]:
        metrics.SETTLEMENT_BATCH.observe(len(records))
        # CPU-bound (signature checks, canonicalization): off the event loop, so the API keeps answering.
        ready, rejections = await asyncio.to_thread(prepare_rewards, records, now_rfc3339())
        by_tx = {id(tx): record for record, tx in ready}
        outcome = await self.store.settle([tx for _, tx in ready])
        for tx, reason in outcome.rejected:
            metrics.REJECTIONS.labels(reason.code).inc()
            rejections.append(Rejection(by_tx[id(tx)], str(reason)))
        metrics.REWARDS_SETTLED.inc(len(outcome.settled))
        metrics.TRANSACTIONS.labels(REWARD).inc(len(outcome.settled))
        metrics.DUPLICATES.inc(len(outcome.duplicates))
        if outcome.settled and self.on_settled is not None:
            self.on_settled(len(outcome.settled))
        return rejections
