"""Transaction records: tx ids, reward evidence checks, leaf bytes and hashes."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

import pytest

from services.common import attestation, merkle, schemas, topics
from services.common.ids import reward_id
from services.common.signing import Keypair, canonical_bytes
from services.ledger.accounts import REWARDS_POOL, TREASURY, Posting
from services.ledger.rewards import prepare_rewards, reward_transaction
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
from tests.support.factories import (
    INGEST,
    ORACLE,
    RULE,
    envelope_of,
    oracle_attestations,
    oracle_attested,
    public,
    recommitted,
    signed_reward,
)

NOW = "2026-11-21T10:00:00.000Z"


def test_reward_record_pays_the_wallet_out_of_the_pool_and_keeps_the_evidence_off_the_chain() -> None:
    owner = Keypair.generate()
    value = signed_reward(owner)
    schemas.validate(topics.REWARDS, value)
    oracle = oracle_attested(value)
    tx = reward_transaction(value, oracle, NOW)
    assert tx.tx_id == derive_tx_id("reward", value["reward"]["reward_id"])
    assert tx.record == {
        "tx_id": tx.tx_id,
        "type": "reward",
        "postings": [
            {"account": REWARDS_POOL, "currency": "CITY", "amount": -1500},
            {"account": owner.did, "currency": "CITY", "amount": 1500},
        ],
        "reward": value["reward"],
        "attestation": oracle,
        "timestamp": NOW,
    }
    assert tx.requires == ((ORACLE.did, "rewards-oracle"), (INGEST.did, "ingest-attestor"))
    assert tx.leaf == canonical_bytes(tx.record)
    assert tx.leaf_hash == merkle.leaf_hash(tx.leaf)
    # The chain holds no reading values, place or registration: those stay in the disclosure.
    for personal in ("values", "zone", "registration", "pm25", owner.sign({})["sig"][:20]):
        assert personal not in tx.leaf.decode()
    assert tx.disclosure is not None and json.loads(tx.disclosure.json) == value["disclosure"]
    assert tx.claim is not None and tx.claim.values == {"pm25": 12.5, "no2": 31}


def test_tx_ids_are_deterministic_and_separated_by_type() -> None:
    value = signed_reward(Keypair.generate())
    first = reward_transaction(value, oracle_attested(value), NOW)
    # Attested again in another batch, later: the same transaction.
    again = reward_transaction(value, oracle_attestations([signed_reward(Keypair.generate()), value])[1], NOW)
    assert first.tx_id == again.tx_id and same_content(first.record, again.record)
    assert derive_tx_id("reward", "x") != derive_tx_id("transfer", "x")
    assert derive_tx_id("reward", value["reward"]["reward_id"]) != value["reward"]["reward_id"]
    other = signed_reward(Keypair.generate())
    assert reward_transaction(other, oracle_attested(other), NOW).tx_id != first.tx_id


def test_genesis_funds_the_pool_from_the_treasury() -> None:
    tx = genesis_transaction(10**12, NOW)
    assert tx.tx_id == GENESIS_TX_ID == genesis_transaction(5, "2030-01-01T00:00:00Z").tx_id
    assert tx.type == "genesis"
    assert tx.postings == (Posting(TREASURY, "CITY", -(10**12)), Posting(REWARDS_POOL, "CITY", 10**12))


def _registration_for_other_device(value: dict[str, Any]) -> dict[str, Any]:
    envelope = envelope_of(value)
    owner = Keypair.from_seed(b"o" * 32)  # not the wallet: the registration names the wallet as owner
    envelope["registration"] = owner.sign({**envelope["registration"], "device_id": Keypair.generate().did})
    return recommitted(value, envelope, ingest=INGEST)


def _registration_of_other_owner(value: dict[str, Any]) -> dict[str, Any]:
    envelope = envelope_of(value)
    stranger = Keypair.generate()
    envelope["registration"] = stranger.sign({**envelope["registration"], "owner": stranger.did})
    return recommitted(value, envelope, ingest=INGEST)


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        (_registration_of_other_owner, "wallet-mismatch"),
        (_registration_for_other_device, "device-mismatch"),
        (
            lambda v: public(v, reading_id="0" * 64, reward_id=reward_id("0" * 64, RULE)),
            "reading-id-mismatch",
        ),
        (lambda v: public(v, reward_id="0" * 64), "reward-id-mismatch"),
        (lambda v: public(v, rule="noise"), "reward-id-mismatch"),
        (lambda v: public(v, wallet="did:key:z6Mk" + "1" * 44), "bad-wallet"),
        (lambda v: public(v, wallet=Keypair.generate().did), "wallet-mismatch"),
        (lambda v: public(v, kind="noise"), "kind-mismatch"),
        (lambda v: public(v, device="0" * 64), "device-mismatch"),
        (lambda v: public(v, earned_at="2026-11-21T10:59:58.250Z"), "earned-at-mismatch"),
        (lambda v: public(v, attested_by="transit_gate"), "attested-by-mismatch"),
        (lambda v: public(v, reading_attestor=ORACLE.did), "attestor-mismatch"),
        (lambda v: public(v, amount=0), "bad-amount"),
        (lambda v: public(v, currency="AID"), "bad-currency"),
        (lambda v: public(v, evidence="0" * 64), "evidence-mismatch"),
    ],
)
def test_rewards_that_attested_keys_vouch_for_are_still_checked(tamper: Any, code: str) -> None:
    value = tamper(signed_reward(Keypair.generate()))
    with pytest.raises(RejectedError) as caught:
        reward_transaction(value, oracle_attested(value), NOW)
    assert caught.value.code == code
    assert str(caught.value).startswith(code + ": ")


def _values(envelope: dict[str, Any]) -> None:
    envelope["reading"]["values"]["pm25"] = 1.0


def _received(envelope: dict[str, Any]) -> None:
    envelope["received_at"] = "2026-11-21T00:00:00.000Z"


def _zone(envelope: dict[str, Any]) -> None:
    envelope["registration"]["zone"] = "elsewhere"


@pytest.mark.parametrize("tamper", [_values, _received, _zone])
def test_evidence_changed_after_ingest_attested_it_is_refused(tamper: Any) -> None:
    value = signed_reward(Keypair.generate())
    envelope = envelope_of(value)
    tamper(envelope)
    # Committed to by the oracle, but not what ingest attested.
    changed = recommitted(value, envelope)
    with pytest.raises(RejectedError) as caught:
        reward_transaction(changed, oracle_attested(changed), NOW)
    assert caught.value.code == "reading-not-attested"
    # Not even committed to: the disclosure does not open the commitment.
    swapped = {**value, "disclosure": changed["disclosure"]}
    with pytest.raises(RejectedError) as caught:
        reward_transaction(swapped, oracle_attested(swapped), NOW)
    assert caught.value.code == "evidence-mismatch"


def test_a_disclosure_with_a_salt_written_otherwise_is_refused() -> None:
    value = signed_reward(Keypair.generate())
    for salt in ("", value["disclosure"]["salt"] + "A", "!" * 22):
        changed = {**value, "disclosure": {**value["disclosure"], "salt": salt}}
        with pytest.raises(RejectedError) as caught:
            reward_transaction(changed, oracle_attested(changed), NOW)
        assert caught.value.code == "bad-disclosure"


def test_a_reward_changed_after_its_oracle_attested_it_is_refused() -> None:
    value = signed_reward(Keypair.generate())
    oracle = oracle_attested(value)
    for changed in (public(value, amount=1_000_000), public(value, policy_version="forged")):
        with pytest.raises(RejectedError) as caught:
            reward_transaction(changed, oracle, NOW)
        assert caught.value.code == "reward-not-attested"
    with pytest.raises(RejectedError) as caught:
        reward_transaction(value, {**oracle, "topic": topics.READINGS.name}, NOW)
    assert caught.value.code == "reward-wrong-topic"


def test_attestations_name_their_signers_whose_roles_the_store_checks() -> None:
    mallory = Keypair.generate()
    value = signed_reward(Keypair.generate(), ingest=mallory)
    tx = reward_transaction(value, oracle_attested(value, mallory), NOW)
    assert tx.requires == ((mallory.did, "rewards-oracle"), (mallory.did, "ingest-attestor"))


def test_same_content_ignores_only_the_timestamp_and_the_attestation() -> None:
    value = signed_reward(Keypair.generate())
    first = reward_transaction(value, oracle_attested(value), NOW)
    later = reward_transaction(copy.deepcopy(value), oracle_attested(value), "2027-01-01T00:00:00Z")
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
    value = signed_reward(Keypair.generate())
    tx = reward_transaction(value, oracle_attested(value), NOW)
    again = Transaction.from_compact(pickle.loads(pickle.dumps(tx.compact())))
    assert again == tx and again.claim == tx.claim and again.record == tx.record
    assert again.disclosure == tx.disclosure


def test_the_settlement_workers_refuse_what_is_not_json_or_not_a_reward() -> None:
    value = signed_reward(Keypair.generate())
    header = json.dumps(oracle_attested(value))
    [good], [bad_schema], [bad_json] = prepare_rewards(
        [(attestation.encode(value), header), (b'{"reward_id": 1}', header), (b"{not json", header)], NOW
    )
    assert len(good) == COMPACT_FIELDS
    assert (bad_schema[0], bad_json[0]) == ("schema", "malformed-json")
