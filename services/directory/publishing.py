"""Publishing merchants' facts to ``city.merchants.v1``, attested by the directory's key.

The ledger enforces these facts (verified, category, locally owned, active) on AID and CITY payments, so it
takes them only from records attested by a key holding the merchant-verifier role on the chain; this is the
key the directory signs each batch with (`services.common.attestation`).
"""

from __future__ import annotations

from collections.abc import Sequence

from services.common.kafka import BrokerUnavailableError, KafkaProducer, attested
from services.common.signing import Keypair
from services.directory import merchants
from services.directory.merchants import Merchant


class MerchantPublisher:
    """Sends merchants' facts, attested in batches, and returns once the broker acknowledged them all."""

    def __init__(self, producer: KafkaProducer, key: Keypair) -> None:
        self.producer = producer
        self.key = key

    async def publish(self, batch: Sequence[Merchant]) -> None:
        """Raise `BrokerUnavailableError` unless the broker acknowledged every record of `batch`."""
        if not batch:
            return
        records = attested(self.key, [merchants.outgoing_record(m) for m in batch])
        failed = [error for error in await self.producer.send_batch(records) if error]
        if failed:
            raise BrokerUnavailableError(f"{len(failed)} merchant records were not acknowledged: {failed[0]}")
