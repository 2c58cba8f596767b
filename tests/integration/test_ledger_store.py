"""The ledger store on a real PostgreSQL: idempotent settlement, funds, one sealer, proofs from stored nodes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.common import db, merkle
from services.common.policy import Policy, parse_policy
from services.common.settings import PlatformSettings
from services.common.signing import Keypair, canonical_bytes
from services.ledger import authority, chain
from services.ledger.accounts import REWARDS_POOL, TREASURY
from services.ledger.app import open_chain
from services.ledger.blocks import SEALER_LOCK, BlockStore
from services.ledger.policies import policy_transaction
from services.ledger.queries import LedgerQueries
from services.ledger.rewards import reward_transaction
from services.ledger.settings import LedgerSettings
from services.ledger.store import LedgerStore, NotFoundError, OutOfRangeError
from services.ledger.transactions import Transaction, genesis_transaction
from tests.support.factories import (
    TEST_POLICY,
    TEST_ROLES,
    oracle_attested,
    policy_publication,
    public,
    signed_reward,
)

pytestmark = pytest.mark.integration

NOW = "2026-11-21T10:00:00.000Z"
KEY = Keypair.generate()
ROOT = Keypair.generate()


def paid(reward: dict, when: str = NOW) -> Transaction:
    """The transaction of a reward attested by the tests' rewards oracle."""
    return reward_transaction(reward, oracle_attested(reward), when)


async def bootstrap(store: LedgerStore) -> None:
    """The chain's authority record (the tests' ingest attestor and rewards oracle hold their roles), and the
    tests' reward policy."""
    tx = authority.bootstrap_transaction(ROOT.did, TEST_ROLES, NOW)
    assert await store.bootstrap(tx, authority.bootstrapped(tx.record["authority"]))
    await publish_policy(store)


async def publish_policy(store: LedgerStore, policy: Policy = TEST_POLICY) -> None:
    receipt = await store.submit_policy(*policy_transaction(policy_publication(policy), NOW))
    assert receipt.created


@pytest.fixture
async def store(platform_settings: PlatformSettings) -> AsyncIterator[LedgerStore]:
    url = await db.prepare_database(platform_settings, "ledger")
    engine = db.create_engine(url, pool_size=4)
    yield LedgerStore(engine)
    await engine.dispose()


async def check_books(store: LedgerStore) -> None:
    """Double entry holds: balances sum to zero per currency and equal the sum of each account's postings."""
    async with store.connection() as conn:
        assert (
            await conn.fetch("SELECT currency FROM balances GROUP BY currency HAVING sum(balance) <> 0") == []
        )
        mismatched = await conn.fetch(
            """SELECT b.account FROM balances b
               LEFT JOIN (SELECT account, currency, sum(amount) AS total FROM postings GROUP BY 1, 2) p
                 USING (account, currency)
               WHERE b.balance <> COALESCE(p.total, 0)"""
        )
        assert mismatched == []


async def test_settlement_pays_once_and_never_overdraws(store: LedgerStore) -> None:
    outcome = await store.settle([genesis_transaction(10_000, NOW)])
    assert len(outcome.settled) == 1
    again = await store.settle([genesis_transaction(10_000, "2027-01-01T00:00:00Z")])
    assert (again.settled, len(again.duplicates)) == ([], 1)
    await bootstrap(store)

    alice, bob, carol = Keypair.generate(), Keypair.generate(), Keypair.generate()
    r1 = signed_reward(alice, amount=4000)
    r2 = signed_reward(bob, amount=5000)
    too_big = signed_reward(carol, amount=2000)
    exact = signed_reward(carol, amount=1000)
    batch = [paid(r) for r in (r1, r2, r1, too_big, exact)]
    outcome = await store.settle(batch)
    assert [t.tx_id for t in outcome.settled] == [batch[0].tx_id, batch[1].tx_id, batch[4].tx_id]
    assert [t.tx_id for t in outcome.duplicates] == [batch[0].tx_id]
    [(refused, reason)] = outcome.rejected
    assert refused is batch[3] and reason.code == "insufficient-funds"

    # Redelivered later: a duplicate; the same reward id with other content: a conflict, not a second payment.
    conflicting = paid(public(r2, policy_version="2027.01"))
    outcome = await store.settle([paid(r1, "2027-01-01T00:00:00Z"), conflicting])
    assert outcome.settled == [] and len(outcome.duplicates) == 1
    assert [reason.code for _, reason in outcome.rejected] == ["conflicting-duplicate"]

    assert await LedgerQueries(store).balances(alice.did) == {"CITY": 4000}
    assert await LedgerQueries(store).balances(bob.did) == {"CITY": 5000}
    assert await LedgerQueries(store).balances(carol.did) == {"CITY": 1000}
    assert await LedgerQueries(store).balances(REWARDS_POOL) == {"CITY": 0}
    assert await LedgerQueries(store).balances(TREASURY) == {"CITY": -10_000}
    await check_books(store)

    # The database refuses an overdraft even if the settlement's own check were bypassed.
    async with store.connection() as conn:
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "UPDATE balances SET balance = -1 WHERE account = $1 AND currency = 'CITY'", alice.did
            )

    history = await LedgerQueries(store).account_transactions(carol.did, limit=10)
    assert [(h["tx_id"], h["changes"], h["leaf_index"]) for h in history] == [
        (batch[4].tx_id, {"CITY": 1000}, None)
    ]
    assert await LedgerQueries(store).top_wallets("CITY", 2) == [(bob.did, 5000), (alice.did, 4000)]


async def test_one_sealer_at_a_time_and_proofs_from_stored_nodes(
    store: LedgerStore, platform_settings: PlatformSettings
) -> None:
    await open_chain(
        store,
        KEY,
        LedgerSettings(genesis_supply=10**9, root_key=ROOT.did, genesis_roles=TEST_ROLES),
        platform_settings.data_dir,
    )
    await publish_policy(store)
    wallet = Keypair.generate()
    txs = [paid(signed_reward(wallet, seq=i, amount=10 + i)) for i in range(37)]
    assert len((await store.settle(txs[:20])).settled) == 20

    # While another process holds the sealer lock, this one does not seal.
    async with store.connection() as other, other.transaction():
        assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEALER_LOCK)
        assert await BlockStore(store).seal(KEY, 1000) is None
    first = await BlockStore(store).seal(KEY, 1000)
    assert first is not None and (first.header.height, first.header.tree_size, first.size) == (0, 23, 23)
    assert await BlockStore(store).seal(KEY, 1000) is None  # nothing pending: no empty blocks

    assert len((await store.settle(txs[20:])).settled) == 17
    blocks = [first]
    while block := await BlockStore(store).seal(KEY, 5):
        blocks.append(block)
    assert [b.size for b in blocks] == [23, 5, 5, 5, 2]

    headers = []
    for height in range(len(blocks)):
        header, tx_ids = await LedgerQueries(store).block(height)
        chain.verify_header(header, KEY.did)
        chain.verify_link(headers[-1] if headers else None, header)
        assert len(tx_ids) == blocks[height].size
        headers.append(header)
    assert headers[-1] == await LedgerQueries(store).latest_header()

    # Settlement order is leaf order: the genesis, the authority bootstrap and the policy, then the rewards.
    leaves = []
    for tx_id in [t for h in range(len(blocks)) for t in (await LedgerQueries(store).block(h))[1]]:
        record = await LedgerQueries(store).transaction_record(tx_id)
        assert canonical_bytes(json.loads(record)) == record
        leaves.append(merkle.leaf_hash(record))
    assert [json.loads(await LedgerQueries(store).transaction_record(t.tx_id)) == t.record for t in txs] == [
        True
    ] * 37
    for header in headers:
        assert header.root == merkle.root_from_leaf_hashes(leaves[: header.tree_size])

    for index, tx in enumerate(txs, start=3):
        proof = await LedgerQueries(store).inclusion_proof(tx.tx_id)
        assert (proof.leaf_index, proof.tree_size, proof.leaf_hash) == (index, 40, tx.leaf_hash)
        merkle.verify_inclusion(tx.leaf_hash, index, 40, proof.audit_path, headers[-1].root)
        old = await LedgerQueries(store).inclusion_proof(tx.tx_id, 33) if index < 33 else None
        if old is not None:
            merkle.verify_inclusion(tx.leaf_hash, index, 33, old.audit_path, headers[2].root)
    for a in headers:
        for b in headers:
            if a.tree_size <= b.tree_size:
                proof = await LedgerQueries(store).consistency_proof(a.tree_size, b.tree_size)
                merkle.verify_consistency(a.tree_size, b.tree_size, a.root, b.root, proof)

    with pytest.raises(OutOfRangeError):
        await LedgerQueries(store).inclusion_proof(txs[-1].tx_id, 33)
    with pytest.raises(OutOfRangeError):
        await LedgerQueries(store).inclusion_proof(txs[0].tx_id, 41)
    with pytest.raises(OutOfRangeError):
        await LedgerQueries(store).consistency_proof(0, 5)
    with pytest.raises(NotFoundError):
        await LedgerQueries(store).inclusion_proof("0" * 64)
    await check_books(store)

    # A ledger with another key must not extend this chain.
    with pytest.raises(RuntimeError, match="signed by"):
        await open_chain(store, Keypair.generate(), LedgerSettings(), platform_settings.data_dir)


async def test_a_frozen_wallet_is_not_paid_rewards_until_unfrozen(store: LedgerStore) -> None:
    await store.settle([genesis_transaction(10_000, NOW)])
    await bootstrap(store)
    frozen_wallet, other = Keypair.generate(), Keypair.generate()
    settled_before = paid(signed_reward(frozen_wallet, seq=1, amount=100))
    assert len((await store.settle([settled_before])).settled) == 1
    async with store.connection() as conn:
        await conn.execute(
            "INSERT INTO frozen (account, tx_id) VALUES ($1, 'test-freeze')", frozen_wallet.did
        )

    held = paid(signed_reward(frozen_wallet, seq=2, amount=200))
    other_paid = paid(signed_reward(other, seq=1, amount=300))
    outcome = await store.settle([held, other_paid, settled_before])
    assert outcome.settled == [other_paid] and outcome.duplicates == [settled_before]
    [(refused, reason)] = outcome.rejected
    assert refused is held and reason.code == "account-frozen" and frozen_wallet.did in reason.detail
    assert await LedgerQueries(store).balances(frozen_wallet.did) == {"CITY": 100}

    async with store.connection() as conn:
        await conn.execute("DELETE FROM frozen WHERE account = $1", frozen_wallet.did)
    assert (await store.settle([held])).settled == [held]  # replayed from the DLQ once unfrozen
    assert await LedgerQueries(store).balances(frozen_wallet.did) == {"CITY": 300}
    await check_books(store)


async def test_a_reward_resting_on_a_key_without_its_role_is_refused_and_its_batch_settles(
    store: LedgerStore,
) -> None:
    await store.settle([genesis_transaction(10_000, NOW)])
    await bootstrap(store)
    mallory, alice = Keypair.generate(), Keypair.generate()
    forged_oracle = signed_reward(mallory, seq=1, amount=9000)
    forged_ingest = signed_reward(mallory, seq=2, amount=9000, ingest=mallory)
    good = paid(signed_reward(alice, seq=1, amount=300))
    outcome = await store.settle(
        [
            reward_transaction(forged_oracle, oracle_attested(forged_oracle, mallory), NOW),
            good,
            paid(forged_ingest),
        ]
    )
    assert outcome.settled == [good]
    assert [(reason.code, mallory.did in reason.detail) for _, reason in outcome.rejected] == [
        ("role-not-held", True),
        ("role-not-held", True),
    ]
    assert await LedgerQueries(store).balances(mallory.did) in ({}, {"CITY": 0})
    assert await LedgerQueries(store).balances(alice.did) == {"CITY": 300}


async def test_a_reward_the_policy_it_names_does_not_allow_is_refused(store: LedgerStore) -> None:
    await store.settle([genesis_transaction(10**9, NOW)])
    await bootstrap(store)
    strict = parse_policy(
        {
            **TEST_POLICY.document,
            "version": "strict-1",
            "caps": {"device_per_hour": 1000, "wallet_per_day": 1500},
        }
    )
    await publish_policy(store, strict)
    alice, bob = Keypair.generate(), Keypair.generate()
    device = Keypair.generate()
    fine = paid(signed_reward(alice, device, seq=1, amount=600, policy=strict))
    device_cap = paid(signed_reward(alice, device, seq=2, amount=600, policy=strict))  # 1200 > 1000 an hour
    other_device = paid(signed_reward(alice, seq=3, amount=600, policy=strict))
    wallet_cap = paid(signed_reward(alice, seq=4, amount=600, policy=strict))  # 1800 > 1500 a day
    bonus = paid(signed_reward(bob, seq=1, amount=600, rule="data.bonus", policy=strict))
    unknown = paid(
        signed_reward(bob, seq=2, amount=600, policy=parse_policy({**strict.document, "version": "x"}))
    )
    outcome = await store.settle([fine, device_cap, other_device, wallet_cap, bonus, unknown])
    assert outcome.settled == [fine, other_device]
    assert [(tx, reason.code) for tx, reason in outcome.rejected] == [
        (device_cap, "cap-device-hour"),
        (wallet_cap, "cap-wallet-day"),
        (bonus, "unknown-rule"),
        (unknown, "unknown-policy"),
    ]
    # Counted across batches, from what is settled.
    assert [reason.code for _, reason in (await store.settle([wallet_cap])).rejected] == ["cap-wallet-day"]
    assert await LedgerQueries(store).balances(alice.did) == {"CITY": 1200}
    await check_books(store)
