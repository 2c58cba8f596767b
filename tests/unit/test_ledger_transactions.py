"""Transaction records: tx ids, reward evidence checks, leaf bytes and hashes."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from services.common import attestation, merkle, schemas, topics
from services.common.signing import Keypair, canonical_bytes
from services.ledger.accounts import REWARDS_POOL, TREASURY, Posting
from services.ledger.rewards import reading_envelope, reward_transaction
from services.ledger.settlement import prepare_rewards
from services.ledger.transactions import (
    COMPACT_FIELDS,
    GENESIS_TX_ID,
    RejectedError,
    Transaction,
    build_transaction,
    derive_tx_id,
    genesis_transaction,
    same_content,
)
from tests.support.factories import INGEST, ORACLE, oracle_attestations, oracle_attested, signed_reward

NOW = "2026-11-21T10:00:00.000Z"


def test_reward_record_pays_the_wallet_out_of_the_pool() -> None:
    owner = Keypair.generate()
    reward = signed_reward(owner)
    schemas.validate(topics.REWARDS, reward)
    oracle = oracle_attested(reward)
    tx = reward_transaction(reward, oracle, NOW)
    assert tx.tx_id == derive_tx_id("reward", reward["reward_id"])
    assert tx.record == {
        "tx_id": tx.tx_id,
        "type": "reward",
        "postings": [
            {"account": REWARDS_POOL, "currency": "CITY", "amount": -1500},
            {"account": owner.did, "currency": "CITY", "amount": 1500},
        ],
        "reward": reward,
        "attestation": oracle,
        "timestamp": NOW,
    }
    assert tx.requires == ((ORACLE.did, "rewards-oracle"), (INGEST.did, "ingest-attestor"))
    assert tx.leaf == canonical_bytes(tx.record)
    assert tx.leaf_hash == merkle.leaf_hash(tx.leaf)


def test_tx_ids_are_deterministic_and_separated_by_type() -> None:
    reward = signed_reward(Keypair.generate())
    first = reward_transaction(reward, oracle_attested(reward), NOW)
    # Attested again in another batch, later: the same transaction.
    again = reward_transaction(
        reward, oracle_attestations([signed_reward(Keypair.generate()), reward])[1], NOW
    )
    assert first.tx_id == again.tx_id and same_content(first.record, again.record)
    assert derive_tx_id("reward", "x") != derive_tx_id("transfer", "x")
    assert derive_tx_id("reward", reward["reward_id"]) != reward["reward_id"]
    other = signed_reward(Keypair.generate())
    assert reward_transaction(other, oracle_attested(other), NOW).tx_id != first.tx_id


def test_genesis_funds_the_pool_from_the_treasury() -> None:
    tx = genesis_transaction(10**12, NOW)
    assert tx.tx_id == GENESIS_TX_ID == genesis_transaction(5, "2030-01-01T00:00:00Z").tx_id
    assert tx.type == "genesis"
    assert tx.postings == (Posting(TREASURY, "CITY", -(10**12)), Posting(REWARDS_POOL, "CITY", 10**12))


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


def _reattested_by_ingest(reward: dict[str, Any]) -> None:
    """Ingest attests the reward's envelope as it now stands (an attestor that was fed a bad envelope)."""
    envelope = reading_envelope(reward)
    [header] = attestation.attest(INGEST, topics.READINGS.name, [attestation.encode(envelope)])
    reward["evidence"]["attestation"] = json.loads(header)


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
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
def test_rewards_that_attested_keys_vouch_for_are_still_checked(tamper: Any, code: str) -> None:
    reward = signed_reward(Keypair.generate())
    tamper(reward)
    if "evidence" in reward:
        _reattested_by_ingest(reward)
    with pytest.raises(RejectedError) as caught:
        reward_transaction(reward, oracle_attested(reward), NOW)
    assert caught.value.code == code
    assert str(caught.value).startswith(code + ": ")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda r: r["evidence"]["reading"]["values"].update(pm25=1.0),
        lambda r: r["evidence"].update(received_at="2026-11-21T00:00:00.000Z"),
        lambda r: r["evidence"]["registration"].update(zone="elsewhere"),
    ],
)
def test_evidence_changed_after_ingest_attested_it_is_refused(tamper: Any) -> None:
    reward = signed_reward(Keypair.generate())
    tamper(reward)
    with pytest.raises(RejectedError) as caught:
        reward_transaction(reward, oracle_attested(reward), NOW)
    assert caught.value.code == "reading-not-attested"


def test_a_reward_changed_after_its_oracle_attested_it_is_refused() -> None:
    reward = signed_reward(Keypair.generate())
    oracle = oracle_attested(reward)
    for changed in ({**reward, "amount": 1_000_000}, {**reward, "policy_version": "forged"}):
        with pytest.raises(RejectedError) as caught:
            reward_transaction(changed, oracle, NOW)
        assert caught.value.code == "reward-not-attested"
    with pytest.raises(RejectedError) as caught:
        reward_transaction(reward, {**oracle, "topic": topics.READINGS.name}, NOW)
    assert caught.value.code == "reward-wrong-topic"


def test_attestations_name_their_signers_whose_roles_the_store_checks() -> None:
    mallory = Keypair.generate()
    reward = signed_reward(Keypair.generate(), ingest=mallory)
    tx = reward_transaction(reward, oracle_attested(reward, mallory), NOW)
    assert tx.requires == ((mallory.did, "rewards-oracle"), (mallory.did, "ingest-attestor"))


def test_same_content_ignores_only_the_timestamp_and_the_attestations() -> None:
    reward = signed_reward(Keypair.generate())
    first = reward_transaction(reward, oracle_attested(reward), NOW)
    later = reward_transaction(copy.deepcopy(reward), oracle_attested(reward), "2027-01-01T00:00:00Z")
    assert same_content(first.record, later.record)
    richer = signed_reward(Keypair.generate())
    assert not same_content(first.record, reward_transaction(richer, oracle_attested(richer), NOW).record)
    changed = copy.deepcopy(first.record)
    changed["reward"]["policy_version"] = "2027.01"
    assert not same_content(first.record, changed)


def test_unbalanced_postings_never_become_a_transaction() -> None:
    with pytest.raises(RejectedError) as caught:
        build_transaction(
            "reward", "0" * 64, [Posting(REWARDS_POOL, "CITY", -5), Posting(TREASURY, "CITY", 4)], NOW
        )
    assert caught.value.code == "bad-postings"


def test_a_transaction_crosses_processes_as_plain_values() -> None:
    reward = signed_reward(Keypair.generate())
    tx = reward_transaction(reward, oracle_attested(reward), NOW)
    again = Transaction.from_compact(pickle.loads(pickle.dumps(tx.compact())))
    assert again == tx and again.claim == tx.claim and again.record == tx.record


def test_the_settlement_workers_refuse_what_is_not_json_or_not_a_reward() -> None:
    reward = signed_reward(Keypair.generate())
    header = json.dumps(oracle_attested(reward))
    good, bad_schema, bad_json = prepare_rewards(
        [(attestation.encode(reward), header), (b'{"reward_id": 1}', header), (b"{not json", header)], NOW
    )
    assert len(good) == COMPACT_FIELDS
    assert (bad_schema[0], bad_json[0]) == ("schema", "malformed-json")
