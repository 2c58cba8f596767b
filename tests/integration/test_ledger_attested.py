"""The ledger on a real PostgreSQL refuses a reward for behaviour no city device attested, under a policy that
asks for it (``attested_by``), and settles the attested reward beside it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.common import db
from services.common.policy import parse_policy
from services.common.settings import PlatformSettings
from services.common.signing import Keypair
from services.ledger.queries import LedgerQueries
from services.ledger.store import LedgerStore
from services.ledger.transactions import Transaction, genesis_transaction
from tests.integration.test_ledger_store import bootstrap, check_books, paid, publish_policy
from tests.support.factories import TEST_POLICY, signed_reward

pytestmark = pytest.mark.integration

NOW = "2026-11-21T10:00:00.000Z"


@pytest.fixture
async def store(platform_settings: PlatformSettings) -> AsyncIterator[LedgerStore]:
    url = await db.prepare_database(platform_settings, "ledger")
    engine = db.create_engine(url, pool_size=4)
    yield LedgerStore(engine)
    await engine.dispose()


async def test_an_unattested_reward_of_an_attested_kind_is_refused(store: LedgerStore) -> None:
    await store.settle([genesis_transaction(10**9, NOW)])
    await bootstrap(store)
    document = {**TEST_POLICY.document, "version": "attested-1"}
    document["kinds"] = {"air": {**document["kinds"]["air"], "attested_by": ["smart_meter"]}}
    attested_policy = parse_policy(document)
    await publish_policy(store, attested_policy)
    alice, meter, gate = Keypair.generate(), Keypair.generate(), Keypair.generate()

    def reward(seq: int, receipt_by: tuple[Keypair, str] | None = None) -> Transaction:
        return paid(signed_reward(alice, seq=seq, amount=600, policy=attested_policy, receipt_by=receipt_by))

    attested = reward(1, (meter, "smart_meter"))
    citizen_only = reward(2)
    wrong_class = reward(3, (gate, "transit_gate"))
    outcome = await store.settle([citizen_only, attested, wrong_class])
    assert outcome.settled == [attested]
    assert [(tx, reason.code) for tx, reason in outcome.rejected] == [
        (citizen_only, "unattested"),
        (wrong_class, "unattested"),
    ]
    assert await LedgerQueries(store).balances(alice.did) == {"CITY": 600}
    await check_books(store)
