"""The settlement consumer's handler: a batch of ``city.rewards.v1`` records -> one database transaction.

Each reward's authorisation is verified before it may settle (the chain carries only verifiable
authorisations): the rewards oracle's attestation of the reward and ingest's of its reading, by keys the
chain says hold those roles. A record carries one reward, or several (a batch record: a reward a line, one
statement of the oracle about them all). Rewards that fail, that would overdraw the rewards pool, or that
conflict with what is already settled come back as `Rejection`s, which the `BatchConsumer` dead-letters with
the reason: a batch record's line alone, with its own attestation (the others settle), or the whole record when
it is not what the oracle attested. Offsets are committed by the consumer only after this handler returned,
i.e. after the database commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import orjson

from services.common import attestation
from services.common.batch_consumer import IncomingRecord, Rejection
from services.common.events import now_rfc3339
from services.common.workers import WorkerPool
from services.ledger import metrics
from services.ledger.rewards import Prepared, prepare_rewards
from services.ledger.store import LedgerStore
from services.ledger.transactions import COMPACT_FIELDS, REWARD, RejectedError, Transaction


class RewardSettler:
    """The `BatchConsumer` handler settling rewards; `on_settled(n)` hears how many were settled.

    With a `pool`, a batch's verification runs in its worker processes (the ledger's hot path: an Ed25519
    check per reward); without one it runs on a thread.
    """

    def __init__(
        self,
        store: LedgerStore,
        on_settled: Callable[[int], None] | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        self.store = store
        self.on_settled = on_settled
        self.pool = pool

    async def _prepare(self, records: list[IncomingRecord], timestamp: str) -> list[list[Prepared]]:
        raw = [(record.raw, record.headers.get(attestation.HEADER)) for record in records]
        if self.pool is None:
            return await asyncio.to_thread(prepare_rewards, raw, timestamp)
        return await self.pool.map(prepare_rewards, raw, timestamp)

    async def __call__(self, records: list[IncomingRecord]) -> list[Rejection]:
        metrics.SETTLEMENT_BATCH.observe(len(records))
        ready: list[tuple[IncomingRecord, Transaction]] = []
        lines_of_batches: set[int] = set()
        rejections: list[Rejection] = []
        for record, items in zip(records, await self._prepare(records, now_rfc3339()), strict=True):
            lines = attestation.record_lines(record.raw) if len(items) > 1 else [record.raw]
            for line, item in zip(lines, items, strict=True):
                # A batch record's line stands alone: its DLQ entry is the line, with its own attestation.
                entry = record if len(items) == 1 else replace(record, raw=line)
                if len(item) == COMPACT_FIELDS:
                    tx = Transaction.from_compact(item)
                    ready.append((entry, tx))
                    if len(items) > 1:
                        lines_of_batches.add(id(tx))
                    continue
                metrics.REJECTIONS.labels(item[0]).inc()
                alone = _attested(entry, item[2]) if len(item) == 3 else entry
                rejections.append(Rejection(alone, str(RejectedError(item[0], item[1]))))
        by_tx = {id(tx): record for record, tx in ready}
        outcome = await self.store.settle([tx for _, tx in ready])
        for tx, reason in outcome.rejected:
            metrics.REJECTIONS.labels(reason.code).inc()
            entry = by_tx[id(tx)]
            if id(tx) in lines_of_batches:
                entry = _attested(entry, orjson.dumps(tx.record["attestation"]).decode())
            rejections.append(Rejection(entry, str(reason)))
        metrics.REWARDS_SETTLED.inc(len(outcome.settled))
        metrics.TRANSACTIONS.labels(REWARD).inc(len(outcome.settled))
        metrics.DUPLICATES.inc(len(outcome.duplicates))
        if outcome.settled and self.on_settled is not None:
            self.on_settled(len(outcome.settled))
        return rejections


def _attested(line: IncomingRecord, header: str) -> IncomingRecord:
    """A batch record's `line` with its own attestation `header` in place of the record's."""
    return replace(line, headers={**line.headers, attestation.HEADER: header})
