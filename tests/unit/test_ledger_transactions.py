"""Transaction records: tx ids, reward evidence checks, leaf bytes and hashes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.common import merkle, schemas, topics
from services.common.signing import Keypair, canonical_bytes
from services.ledger.accounts import REWARDS_POOL, TREASURY, Posting
from services.ledger.transactions import (
    GENESIS_TX_ID,
    RejectedError,
    build_transaction,
    derive_tx_id,
    genesis_transaction,
    reward_transaction,
    same_content,
)
from tests.support.factories import signed_reward

NOW = "2026-11-21T10:00:00.000Z"


def test_reward_record_pays_the_wallet_out_of_the_pool() -> None:
    owner = Keypair.generate()
    reward = signed_reward(owner)
    schemas.validate(topics.REWARDS, reward)
    tx = reward_transaction(reward, NOW)
    assert tx.tx_id == derive_tx_id("reward", reward["reward_id"])
    assert tx.record == {
        "tx_id": tx.tx_id,
        "type": "reward",
        "postings": [
            {"account": REWARDS_POOL, "currency": "CITY", "amount": -1500},
            {"account": owner.did, "currency": "CITY", "amount": 1500},
        ],
        "reward": reward,
        "timestamp": NOW,
    }
    assert tx.leaf == canonical_bytes(tx.record)
    assert tx.leaf_hash == merkle.leaf_hash(tx.leaf)


def test_tx_ids_are_deterministic_and_separated_by_type() -> None:
    reward = signed_reward(Keypair.generate())
    assert reward_transaction(reward, NOW).tx_id == reward_transaction(reward, "2027-01-01T00:00:00Z").tx_id
    assert derive_tx_id("reward", "x") != derive_tx_id("transfer", "x")
    assert derive_tx_id("reward", reward["reward_id"]) != reward["reward_id"]
    other = signed_reward(Keypair.generate())
    assert reward_transaction(other, NOW).tx_id != reward_transaction(reward, NOW).tx_id


def test_genesis_funds_the_pool_from_the_treasury() -> None:
    tx = genesis_transaction(10**12, NOW)
    assert tx.tx_id == GENESIS_TX_ID == genesis_transaction(5, "2030-01-01T00:00:00Z").tx_id
    assert tx.type == "genesis"
    assert tx.postings == (Posting(TREASURY, "CITY", -(10**12)), Posting(REWARDS_POOL, "CITY", 10**12))


def _tamper_reading_value(reward: dict[str, Any]) -> None:
    reward["evidence"]["reading"]["values"]["pm25"] = 1.0


def _registration_for_other_device(reward: dict[str, Any]) -> None:
    owner = Keypair.generate()
    reward["wallet"] = owner.did
    reward["evidence"]["registration"] = owner.sign(
        {"device_id": Keypair.generate().did, "owner": owner.did, "kind": "air", "zone": "centre"}
    )


def _registration_of_other_owner(reward: dict[str, Any]) -> None:
    stranger = Keypair.generate()
    reward["evidence"]["registration"] = stranger.sign(
        {**reward["evidence"]["registration"], "owner": stranger.did}
    )


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (_tamper_reading_value, "bad-reading-signature"),
        (lambda r: r["evidence"]["reading"].pop("sig"), "bad-reading-signature"),
        (_registration_of_other_owner, "wallet-mismatch"),
        (_registration_for_other_device, "device-mismatch"),
        (lambda r: r.update(reading_id="0" * 64), "reading-id-mismatch"),
        (lambda r: r.update(reward_id="0" * 64), "reward-id-mismatch"),
        (lambda r: r.update(rule="noise"), "reward-id-mismatch"),
        (lambda r: r.update(wallet="did:key:z6Mk" + "1" * 44), "bad-wallet"),
        (lambda r: r.update(amount=0), "bad-amount"),
        (lambda r: r.update(currency="AID"), "bad-currency"),
        (lambda r: r.pop("evidence"), "malformed"),
    ],
)
def test_rewards_without_verifiable_authorisation_are_rejected(tamper: Any, code: str) -> None:
    reward = signed_reward(Keypair.generate())
    tamper(reward)
    with pytest.raises(RejectedError) as caught:
        reward_transaction(reward, NOW)
    assert caught.value.code == code
    assert str(caught.value).startswith(code + ": ")


def test_registration_signed_by_someone_else_is_rejected() -> None:
    reward = signed_reward(Keypair.generate(), registration_signer=Keypair.generate())
    with pytest.raises(RejectedError) as caught:
        reward_transaction(reward, NOW)
    assert caught.value.code == "bad-registration-signature"


def test_same_content_ignores_only_the_timestamp() -> None:
    reward = signed_reward(Keypair.generate())
    first = reward_transaction(reward, NOW)
    assert same_content(
        first.record, reward_transaction(copy.deepcopy(reward), "2027-01-01T00:00:00Z").record
    )
    richer = signed_reward(Keypair.generate())
    assert not same_content(first.record, reward_transaction(richer, NOW).record)
    changed = copy.deepcopy(first.record)
    changed["reward"]["policy_version"] = "2027.01"
    assert not same_content(first.record, changed)


def test_unbalanced_postings_never_become_a_transaction() -> None:
    with pytest.raises(RejectedError) as caught:
        build_transaction(
            "reward", "0" * 64, [Posting(REWARDS_POOL, "CITY", -5), Posting(TREASURY, "CITY", 4)], NOW
        )
    assert caught.value.code == "bad-postings"
