"""Loading a synthetic city into the directory (``smartcity directory seed``), published like any change."""

from __future__ import annotations

from collections.abc import Callable

from services.common.signing import Keypair
from services.directory import merchants, synthetic
from services.directory.merchants import Merchant, MerchantVerification
from services.directory.publishing import MerchantPublisher
from services.directory.store import LoadItem, MerchantStore

BATCH = 2000


async def seed(
    store: MerchantStore,
    publisher: MerchantPublisher | None,
    count: int,
    seed: int,
    verifier: Keypair,
    progress: Callable[[int], None] = lambda _done: None,
) -> int:
    """Store `count` synthetic merchants (replacing those of an earlier run with the same `seed`) and publish
    each batch to ``city.merchants.v1``, committing a batch only once the broker acknowledged all of it.

    With no `publisher` nothing is published (benchmarks measuring search alone). Every registration and
    verification goes through the same checks as the API's. Returns how many were stored.
    """

    async def publish(batch: list[Merchant]) -> None:
        if publisher is not None:
            await publisher.publish(batch)

    stored = 0
    pending: list[LoadItem] = []
    for item in synthetic.merchants(count, seed, verifier):
        registration = merchants.check_registration(item.registration)
        verification: MerchantVerification | None = None
        if item.verification is not None:
            verification = merchants.check_verification(item.verification, {verifier.did})
        pending.append((registration, item.registration, verification, item.verification))
        if len(pending) == BATCH:
            stored += len(await store.load(pending, publish))
            progress(stored)
            pending = []
    if pending:
        stored += len(await store.load(pending, publish))
        progress(stored)
    await store.tidy()
    return stored
