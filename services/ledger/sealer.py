"""The sealer: seals settled transactions into signed blocks, then publishes each block's events.

As soon as it hears that transactions settled (`notify_settled`), and every ``seal_interval_ms`` for those it
did not hear of, it seals what is pending, a full block at a time while a backlog lasts. After the commit it
publishes, per block, the signed header to ``city.ledger.checkpoints.v1`` and one ``city.ledger.settled.v1``
event per wallet posting. Publication works from the database (blocks not yet marked published), so events a
crash interrupted are sent on the next round: delivery is at-least-once, with deterministic event ids for
consumers to deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from services.common import topics
from services.common.events import cloudevent_headers
from services.common.kafka import KafkaProducer, OutgoingRecord
from services.common.signing import Keypair
from services.ledger import metrics
from services.ledger.blocks import BlockStore, SealedBlock
from services.ledger.settings import SERVICE, LedgerSettings
from services.ledger.store import LedgerStore

log = logging.getLogger(__name__)

EVENT_SOURCE = f"smartcity/{SERVICE}"
CHECKPOINT_EVENT = "city.ledger.checkpoint.v1"
SETTLED_EVENT = "city.ledger.settled.v1"


class Sealer:
    """The background task sealing blocks and publishing their events (`run` until `stop`)."""

    def __init__(
        self, store: LedgerStore, producer: KafkaProducer, keypair: Keypair, settings: LedgerSettings
    ) -> None:
        self.blocks = BlockStore(store)
        self.producer = producer
        self.keypair = keypair
        self.interval_s = settings.seal_interval_ms / 1000
        self.max_block_txs = settings.max_block_txs
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def notify_settled(self, count: int) -> None:
        """Hear that `count` transactions settled: seal them now (a settlement is published once sealed, so
        waiting out the interval would add it to every reward's latency)."""
        if count:
            self._wake.set()

    def stop(self) -> None:
        """Make `run` return after a last round (seal what is pending, publish)."""
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval_s)
            if self._stopping.is_set():
                break
            self._wake.clear()
            await self.round()
        await self.round()  # seal what settled before the stop, so a clean shutdown leaves nothing pending

    async def round(self) -> None:
        """Seal what is pending and publish what is unpublished; failures are logged and retried next round."""
        try:
            await self.seal_pending()
            await self.publish_pending()
        except Exception:
            log.exception("sealing round failed; retrying in %.2fs", self.interval_s)

    async def seal_pending(self) -> list[SealedBlock]:
        """Seal blocks until nothing is pending (or another process holds the sealer lock)."""
        sealed: list[SealedBlock] = []
        while True:
            started = time.perf_counter()
            block = await self.blocks.seal(self.keypair, self.max_block_txs)
            if block is None:
                return sealed
            metrics.SEAL_LATENCY.observe(time.perf_counter() - started)
            metrics.BLOCKS_SEALED.inc()
            metrics.TREE_SIZE.set(block.header.tree_size)
            metrics.BLOCK_HEIGHT.set(block.header.height)
            log.info(
                "sealed block %d: %d transactions, tree size %d, root %s",
                block.header.height,
                block.size,
                block.header.tree_size,
                block.header.root_hash,
            )
            sealed.append(block)
            if block.size < self.max_block_txs:
                return sealed

    async def publish_pending(self) -> int:
        """Publish the events of every unpublished block, oldest first; returns how many blocks it published.

        Stops at the first block the broker does not fully acknowledge (the next round retries it).
        """
        published = 0
        while blocks := await self.blocks.unpublished_blocks():
            for block in blocks:
                records = await self.block_events(block)
                errors = [e for e in await self.producer.send_batch(records) if e]
                if errors:
                    log.warning("publishing block %d failed (%s); retrying", block.header.height, errors[0])
                    return published
                await self.blocks.mark_published(block.header.height)
                published += 1
        return published

    async def block_events(self, block: SealedBlock) -> list[OutgoingRecord]:
        """The block's settled events (one per wallet posting) and its checkpoint."""
        header = block.header
        records = [
            OutgoingRecord(
                topics.LEDGER_SETTLED,
                key=p.wallet,
                value={
                    "tx_id": p.tx_id,
                    "type": p.type,
                    "wallet": p.wallet,
                    "currency": p.currency,
                    "delta": p.delta,
                    "leaf_index": p.leaf_index,
                    "block_height": header.height,
                    "sealed_at": header.timestamp,
                },
                headers=cloudevent_headers(
                    SETTLED_EVENT, EVENT_SOURCE, f"{p.tx_id}/{p.wallet}/{p.currency}", header.timestamp
                ),
            )
            for p in await self.blocks.wallet_postings(block)
        ]
        records.append(
            OutgoingRecord(
                topics.LEDGER_CHECKPOINTS,
                key="chain",
                value=header.to_json(),
                headers=cloudevent_headers(
                    CHECKPOINT_EVENT, EVENT_SOURCE, f"checkpoint/{header.height}", header.timestamp
                ),
            )
        )
        return records
