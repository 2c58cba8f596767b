"""The ledger service: settles rewards into a signed, append-only Merkle chain and serves proofs.

The lifespan runs background tasks beside the API: the settlement consumers (``city.rewards.v1`` ->
database), the ``city.merchants.v1`` fold, the AID expiry loop and the sealer (database -> signed blocks ->
checkpoint and settled events).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from services.common import attestation, liveness, topics
from services.common.batch_consumer import TRANSIENT_ERRORS, BatchConsumer, IncomingRecord, Rejection
from services.common.bindings import development_issuer
from services.common.db import TRANSIENT_ERRORS as DATABASE_ERRORS
from services.common.events import now_rfc3339
from services.common.http import broker_ready, database_and_producer, database_ready
from services.common.http import create_app as create_service_app
from services.common.kafka import ensure_topics
from services.common.lag import LagMonitor
from services.common.openapi import problems
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.common.workers import WorkerPool
from services.ledger import authority, merchant_facts, metrics
from services.ledger.api.accounts import router as accounts_router
from services.ledger.api.anchors import router as anchors_router
from services.ledger.api.audit import router as audit_router
from services.ledger.api.authority import router as authority_router
from services.ledger.api.chain import router as chain_router
from services.ledger.api.circulation import router as circulation_router
from services.ledger.api.disclosures import router as disclosures_router
from services.ledger.api.erasures import router as erasures_router
from services.ledger.api.policies import router as policies_router
from services.ledger.api.routes import router
from services.ledger.circulation import CirculationReads
from services.ledger.keys import bootstrap_authority, load_signing_key
from services.ledger.payment_store import PaymentStore
from services.ledger.payments import AID_EXPIRY
from services.ledger.queries import LedgerQueries
from services.ledger.rewards import prepare_rewards
from services.ledger.sealer import Sealer
from services.ledger.settings import SERVICE, LedgerSettings
from services.ledger.settlement import RewardSettler
from services.ledger.store import LedgerStore
from services.ledger.transactions import GENESIS, RejectedError, genesis_transaction

log = logging.getLogger(__name__)

UNAVAILABLE = problems(
    (
        503,
        "The database did not answer (database-unavailable): retry after Retry-After; a signed object sent again "
        "settles once",
    )
)
"""What every ledger route may answer (`services.common.http.install_problem_handlers`)."""

LEDGER_TOPICS = (
    topics.REWARDS,
    topics.REWARDS.dlq,
    topics.MERCHANTS,
    topics.MERCHANTS.dlq,
    topics.LEDGER_SETTLED,
    topics.LEDGER_CHECKPOINTS,
)


async def open_chain(store: LedgerStore, keypair: Keypair, settings: LedgerSettings, data_dir: Path) -> None:
    """Check the chain is signed by this ledger's key, settle the genesis transaction and the bootstrap
    authority record (each once ever).

    Raises RuntimeError if the chain's blocks are signed by another key: sealing with a second key would
    give blocks no verifier holding the ledger's public key accepts.
    """
    latest = await LedgerQueries(store).latest_header()
    if latest is not None:
        if latest.public_key != keypair.did:
            raise RuntimeError(
                f"the chain is signed by {latest.public_key} but this ledger's key is {keypair.did}; "
                "set LEDGER_SIGNING_KEY to the chain's key"
            )
        metrics.TREE_SIZE.set(latest.tree_size)
        metrics.BLOCK_HEIGHT.set(latest.height)
    outcome = await store.settle([genesis_transaction(settings.genesis_supply, now_rfc3339())])
    if outcome.settled:
        metrics.TRANSACTIONS.labels(GENESIS).inc()
        log.info("genesis: the treasury funded the rewards pool with %d micro-CITY", settings.genesis_supply)
    elif outcome.rejected:
        log.warning("the genesis on the chain differs from LEDGER_GENESIS_SUPPLY; the chain's stands")
    root, seeds = bootstrap_authority(settings, data_dir)
    bootstrap = authority.bootstrap_transaction(root, seeds, now_rfc3339())
    if await store.bootstrap(bootstrap, authority.bootstrapped(bootstrap.record["authority"])):
        metrics.TRANSACTIONS.labels(authority.AUTHORITY).inc()
        log.info("bootstrap: root key %s, roles %s", root, {r: len(k) for r, k in seeds.items()})
    elif (await store.authority()).root != root and settings.root_key is not None:
        log.warning("the chain's root key differs from LEDGER_ROOT_KEY; the chain's stands")


async def expire_grants(store: LedgerStore, sealer: Sealer, interval_s: float) -> None:
    """Return the unspent AID of expired grants to the aid pool, every `interval_s`, until cancelled."""
    while True:
        try:
            settled = await PaymentStore(store).expire_grants(now_rfc3339())
        except Exception:
            log.exception("returning expired AID failed; retrying in %.1fs", interval_s)
            settled = []
        if settled:
            metrics.TRANSACTIONS.labels(AID_EXPIRY).inc(len(settled))
            sealer.notify_settled(len(settled))
            log.info("returned the unspent AID of %d expired grants to the aid pool", len(settled))
            continue
        await asyncio.sleep(interval_s)


class MerchantFold:
    """The `BatchConsumer` handler folding ``city.merchants.v1`` into the merchants table: only records
    attested by a merchant verifier, with a real time (`merchant_facts.check_fact`); the others go to the
    DLQ with the reason."""

    def __init__(self, store: LedgerStore) -> None:
        self.store = store

    async def __call__(self, records: list[IncomingRecord]) -> list[Rejection]:
        held = await self.store.authority()
        now = datetime.now(UTC)
        good: list[Mapping[str, Any]] = []
        rejections: list[Rejection] = []
        for record in records:
            try:
                try:
                    signer = attestation.verify_header(
                        record.headers.get(attestation.HEADER), topics.MERCHANTS.name, record.raw
                    ).signer
                except attestation.AttestationError as exc:
                    raise RejectedError(exc.code, exc.detail) from exc
                merchant_facts.check_fact(record.value, signer, held, now)
            except RejectedError as exc:
                metrics.REJECTIONS.labels(f"merchant-{exc.code}").inc()
                rejections.append(Rejection(record, str(exc)))
                continue
            good.append(record.value)
        await PaymentStore(self.store).fold_merchants(good)
        return rejections


def stuck(app: FastAPI) -> list[str]:
    """Why the ledger's background work is stuck: a task (consumer, sealer, AID expiry) ended, or a consumer
    holds records it has committed nothing of for longer than the stall bound."""
    ended = [f"{name} ended" for name, task in app.state.workers.items() if task.done()]
    return ended + liveness.stuck(app.state.progress, app.state.stall_s)


async def workers_ready(app: FastAPI) -> bool:
    """Readiness: the settlement consumers, the merchants fold and the sealer are running and moving."""
    return not stuck(app)


async def watch(app: FastAPI) -> None:
    """Report the ledger stuck (`liveness.report_stuck`: the process exits) once `stuck` says so."""
    while not (reasons := stuck(app)):
        await asyncio.sleep(1)
    liveness.report_stuck(reasons)


def create_app(platform: PlatformSettings | None = None, settings: LedgerSettings | None = None) -> FastAPI:
    platform = platform or PlatformSettings()
    settings = settings or LedgerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        keypair = load_signing_key(settings, platform.data_dir)
        async with database_and_producer(app, platform, SERVICE):
            app.state.store = store = LedgerStore(app.state.engine)
            app.state.circulation = CirculationReads(store, settings.circulation_cache_s)
            # Signed reads of accounts (services.common.signed_reads): their time window, and the keys that may
            # read any balance besides the holder and the chain's auditors (development: identity's key).
            app.state.signed_read_skew_s = platform.signed_read_skew_s
            app.state.balance_readers = frozenset(
                settings.balance_readers or [development_issuer(platform.data_dir)]
            )
            producer = app.state.producer
            app.state.workers = {}
            app.state.progress = []
            app.state.stall_s = platform.consumer_stall_s
            app.state.verify_pool = pool = (
                WorkerPool(settings.verify_workers, runs=[prepare_rewards])
                if settings.verify_workers
                else None
            )
            # smartcity_consumer_lag of the settlement and merchants groups, sampled on a thread of its own.
            lag = LagMonitor(
                platform.bootstrap_servers,
                groups={
                    settings.consumer_group: [topics.REWARDS],
                    settings.merchants_group: [topics.MERCHANTS],
                },
            )
            try:
                await asyncio.to_thread(ensure_topics, platform.bootstrap_servers, LEDGER_TOPICS)
                lag.start()
                await open_chain(store, keypair, settings, platform.data_dir)
                sealer = Sealer(store, producer, keypair, settings)
                # Several members of one group share the partitions: while one waits for its database commit,
                # another's batch is being verified (the balance locks keep concurrent settlements exact).
                consumers = [
                    BatchConsumer(
                        bootstrap_servers=platform.bootstrap_servers,
                        topic=topics.REWARDS,
                        group_id=settings.consumer_group,
                        handler=RewardSettler(store, sealer.notify_settled, pool),
                        producer=producer,
                        # consumer_batch_size counts rewards: a batch record carries up to rewards_per_record.
                        batch_size=max(1, settings.consumer_batch_size // platform.rewards_per_record),
                        session_timeout_ms=platform.kafka_session_timeout_ms,
                        decode=False,  # the verification workers decode and validate each reward
                        transient=(*TRANSIENT_ERRORS, *DATABASE_ERRORS),
                    )
                    for _ in range(settings.consumers)
                ]
                merchants = BatchConsumer(
                    bootstrap_servers=platform.bootstrap_servers,
                    topic=topics.MERCHANTS,
                    group_id=settings.merchants_group,
                    handler=MerchantFold(store),
                    producer=producer,
                    session_timeout_ms=platform.kafka_session_timeout_ms,
                    transient=(*TRANSIENT_ERRORS, *DATABASE_ERRORS),
                )
                app.state.progress = [c.progress for c in [*consumers, merchants]]
                app.state.workers = {
                    **{
                        f"consumer-{i}": asyncio.create_task(c.run(), name=f"ledger-consumer-{i}")
                        for i, c in enumerate(consumers)
                    },
                    "merchants": asyncio.create_task(merchants.run(), name="ledger-merchants"),
                    "sealer": asyncio.create_task(sealer.run(), name="ledger-sealer"),
                    "aid-expiry": asyncio.create_task(
                        expire_grants(store, sealer, settings.aid_expiry_interval_s), name="ledger-aid-expiry"
                    ),
                }
                for task in app.state.workers.values():
                    task.add_done_callback(_log_exit)
                watchdog = asyncio.create_task(watch(app), name="ledger-watchdog")
                log.info(
                    "ledger %s: consuming %s as %s", keypair.did, topics.REWARDS.name, settings.consumer_group
                )
                yield
                watchdog.cancel()
                # Stop taking rewards first, then seal what they settled, then flush the events.
                for consumer in [*consumers, merchants]:
                    consumer.stop()
                app.state.workers["aid-expiry"].cancel()
                await asyncio.gather(
                    *(task for name, task in app.state.workers.items() if name != "sealer"),
                    return_exceptions=True,
                )
                sealer.stop()
                await asyncio.gather(app.state.workers["sealer"], return_exceptions=True)
            finally:
                for task in app.state.workers.values():
                    task.cancel()
                if pool is not None:
                    pool.shutdown()
                await asyncio.to_thread(lag.close)

    app = create_service_app(
        service=SERVICE,
        version="0.1.0",
        lifespan=lifespan,
        readiness={"database": database_ready, "broker": broker_ready, "workers": workers_ready},
        description="Settles rewards into signed blocks of an RFC 9162 Merkle chain; serves balances and proofs.",
        retry_after_s=settings.retry_after_s,
    )
    for routes in (
        accounts_router,
        chain_router,
        router,
        authority_router,
        policies_router,
        anchors_router,
        audit_router,
        circulation_router,
        disclosures_router,
        erasures_router,
    ):
        app.include_router(routes, responses=UNAVAILABLE)
    return app


def _log_exit(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped", task.get_name(), exc_info=task.exception())
