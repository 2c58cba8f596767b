"""Rewards on the chain: what authorises a reward, and the transaction paying it (pure).

A reward reaches the ledger on ``city.rewards.v1`` attested by a rewards oracle, and carries, as evidence,
the reading ingest attested. `verify_reward` checks both attestations and that the evidence and the reward
agree; the store then checks that both keys hold their roles, and that the reward is within the policy it
names (`services.ledger.policies`), before it settles.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.common import attestation, signing
from services.common.ids import reading_id, reward_id
from services.common.roles import Role
from services.common.topics import READINGS, REWARDS
from services.ledger.accounts import CITY, REWARDS_POOL, AccountError, Posting, check_account, is_wallet
from services.ledger.payments import parse_time
from services.ledger.policies import claim_of
from services.ledger.transactions import REWARD, RejectedError, Transaction, build_transaction, derive_tx_id


def reading_envelope(reward: Mapping[str, Any]) -> dict[str, Any]:
    """The ``city.readings.v1`` value a reward's evidence came from, rebuilt from the reward: what ingest's
    attestation (``evidence.attestation``) covers."""
    evidence = reward["evidence"]
    envelope = {
        "reading_id": reward["reading_id"],
        "owner": reward["wallet"],
        "received_at": evidence["received_at"],
        "reading": evidence["reading"],
        "registration": evidence["registration"],
    }
    if "person" in evidence:  # the person ingest attested the wallet bound to
        envelope["person"] = evidence["person"]
    return envelope


def verify_reward(
    reward: Mapping[str, Any], oracle_attestation: Mapping[str, Any], reward_bytes: bytes | None = None
) -> tuple[str, str]:
    """Check that a (schema-valid) reward carries verifiable authorisation; return the keys it rests on,
    (rewards oracle, ingest attestor), whose roles the caller checks; raise `RejectedError` if not.

    - the reward itself is attested by its oracle (`oracle_attestation`, on ``city.rewards.v1``);
    - the readings envelope it names (`reading_envelope`) is attested by ingest, which checked the device's
      signature, its registration to the wallet, the owner's consent and the sequence number;
    - the registration binds the reading's device to the rewarded wallet, and the reading and reward ids
      are the ones derived from the reading, so one reading under one rule has exactly one reward id;
    - it was earned when the reading was taken (``earned_at`` is the reading's signed ``ts``, a real time).

    The device's and the owner's own signatures are not checked again: ingest's attestation covers the
    bytes that carry them, and they stay on the chain for an auditor (``smartcity verify --deep``).
    `reward_bytes`, when the caller has them, are the reward's JCS bytes.
    """
    try:
        wallet = reward["wallet"]
        reading = reward["evidence"]["reading"]
        registration = reward["evidence"]["registration"]
        device_id = reading["device_id"]
        seq = reading["seq"]
        envelope = reading_envelope(reward)
    except (KeyError, TypeError) as exc:
        raise RejectedError("malformed", f"missing field {exc}") from exc
    try:
        check_account(wallet)
        if not is_wallet(wallet):
            raise AccountError(f"{wallet!r} is a system account")
    except AccountError as exc:
        raise RejectedError("bad-wallet", f"{wallet!r} is not an Ed25519 did:key") from exc
    try:
        encoded = reward_bytes if reward_bytes is not None else attestation.encode(reward)
        oracle = attestation.verify(oracle_attestation, REWARDS.name, encoded).signer
    except attestation.AttestationError as exc:
        raise RejectedError(f"reward-{exc.code}", exc.detail) from exc
    except signing.SignatureError as exc:
        raise RejectedError("not-canonical", str(exc)) from exc
    try:
        ingest = attestation.verify(
            reward["evidence"]["attestation"], READINGS.name, attestation.encode(envelope)
        ).signer
    except attestation.AttestationError as exc:
        raise RejectedError(f"reading-{exc.code}", exc.detail) from exc
    if registration.get("owner") != wallet:
        raise RejectedError("wallet-mismatch", "the registration's owner is not the rewarded wallet")
    if registration.get("device_id") != device_id:
        raise RejectedError("device-mismatch", "the registration is for another device than the reading's")
    if reward.get("reading_id") != reading_id(device_id, seq):
        raise RejectedError(
            "reading-id-mismatch", "reading_id is not sha256('<device_id>/<seq>') of the reading"
        )
    if reward.get("reward_id") != reward_id(reward["reading_id"], reward.get("rule", "")):
        raise RejectedError("reward-id-mismatch", "reward_id is not sha256('<reading_id>/<rule>')")
    try:
        parse_time(reward["earned_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RejectedError("impossible-date", f"earned_at {reward.get('earned_at')!r} is no time") from exc
    if reward["earned_at"] != reading.get("ts"):
        # Caps count by the reading's signed time: a reward dated otherwise would escape them.
        raise RejectedError("earned-at-mismatch", "earned_at is not the reading's signed time (ts)")
    if reward.get("currency") != CITY:
        raise RejectedError("bad-currency", f"rewards are paid in {CITY}")
    amount = reward.get("amount")
    if type(amount) is not int or amount <= 0:
        raise RejectedError("bad-amount", f"amount must be a positive integer of micro-units, got {amount!r}")
    return oracle, ingest


def reward_transaction(
    reward: Mapping[str, Any], oracle_attestation: Mapping[str, Any], timestamp: str
) -> Transaction:
    """The transaction paying `reward` out of the rewards pool; its record holds the reward (with its
    evidence) and the oracle's attestation, so anyone can check both again.

    Raises `RejectedError` if the reward's authorisation does not verify (see `verify_reward`); the store
    checks the roles of the keys it rests on, and its claim under its policy, when it settles.
    """
    try:
        reward_bytes = attestation.encode(reward)
    except signing.SignatureError as exc:
        raise RejectedError("not-canonical", str(exc)) from exc
    oracle, ingest = verify_reward(reward, oracle_attestation, reward_bytes)
    amount = reward["amount"]
    postings = [Posting(REWARDS_POOL, CITY, -amount), Posting(reward["wallet"], CITY, amount)]
    return build_transaction(
        REWARD,
        derive_tx_id(REWARD, reward["reward_id"]),
        postings,
        timestamp,
        requires=((oracle, Role.REWARDS_ORACLE), (ingest, Role.INGEST_ATTESTOR)),
        claim=claim_of(reward),
        encoded={"reward": reward_bytes},  # canonicalised once, to check the oracle's attestation
        attestation=dict(oracle_attestation),
    )
