"""Rewards on the chain: what authorises a reward, and the transaction paying it (pure).

A reward reaches the ledger on ``city.rewards.v1`` as a public part, attested by a rewards oracle, and the
private disclosure of its evidence (`services.common.evidence`): the readings envelope ingest attested, and
the salt that opens the reward's commitment to it. `verify_public` checks what anyone can check from the chain
alone; `verify_disclosure` what the ledger (and an auditor) checks with the evidence: the commitment, ingest's
attestation of the envelope's very bytes, and that the envelope says what the public reward says. The store
then checks that both keys hold their roles, and that the reward is within the policy it names, with the
reading's values (`services.ledger.policies`), before it settles; the disclosure is kept off the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from services.common import attestation, evidence, schemas, signing
from services.common.events import decode_json
from services.common.ids import reading_id, reward_id
from services.common.roles import Role
from services.common.topics import READINGS, REWARDS
from services.ledger.accounts import CITY, REWARDS_POOL, AccountError, Posting, check_account, is_wallet
from services.ledger.policies import claim_of
from services.ledger.transactions import REWARD, RejectedError, Transaction, build_transaction, derive_tx_id


@dataclass(frozen=True)
class Disclosure:
    """The evidence of a settled reward, kept off the chain: the compact JSON of its disclosure (salt, envelope,
    ingest's attestation), stored as bytes (PostgreSQL need not parse what it only keeps and serves), and the
    wallet it paid (whose holder may read it, and whose erasure erases it)."""

    wallet: str
    json: bytes


def verify_public(
    reward: Mapping[str, Any],
    oracle_attestation: Mapping[str, Any],
    reward_bytes: bytes | None = None,
    oracle: str | None = None,
) -> str:
    """Check what a (schema-valid) public reward says by itself: its oracle's attestation (`reward_bytes`, its
    JCS bytes, when the caller has them; `oracle`, the key whose attestation of them the caller checked
    already, for a batch record's line), a wallet to pay, ids derived as the schemas say. Returns the oracle's
    key, whose role the caller checks; raises `RejectedError`."""
    wallet = reward["wallet"]
    try:
        check_account(wallet)
        if not is_wallet(wallet):
            raise AccountError(f"{wallet!r} is a system account")
    except AccountError as exc:
        raise RejectedError("bad-wallet", f"{wallet!r} is not an Ed25519 did:key") from exc
    try:
        if oracle is None:
            encoded = reward_bytes if reward_bytes is not None else attestation.encode(reward)
            oracle = attestation.verify(oracle_attestation, REWARDS.name, encoded).signer
    except attestation.AttestationError as exc:
        raise RejectedError(f"reward-{exc.code}", exc.detail) from exc
    except signing.SignatureError as exc:
        raise RejectedError("not-canonical", str(exc)) from exc
    if reward["reward_id"] != reward_id(reward["reading_id"], reward["rule"]):
        raise RejectedError("reward-id-mismatch", "reward_id is not sha256('<reading_id>/<rule>')")
    if reward["currency"] != CITY:
        raise RejectedError("bad-currency", f"rewards are paid in {CITY}")
    amount = reward["amount"]
    if type(amount) is not int or amount <= 0:
        raise RejectedError("bad-amount", f"amount must be a positive integer of micro-units, got {amount!r}")
    return oracle


def verify_disclosure(reward: Mapping[str, Any], disclosure: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Check a reward's disclosure: it opens the reward's commitment, ingest attested the envelope's bytes (by
    the key the reward names), and the envelope (its reading, registration, owner, person, receipt) is the
    one the public reward describes. Returns the envelope and ingest's key; raises `RejectedError`.

    The device's and the owner's own signatures are not checked again: ingest's attestation covers the bytes
    that carry them, and an auditor can check them (``smartcity verify --deep``).
    """
    try:
        envelope_bytes, envelope = evidence.open_disclosure(reward, disclosure)
    except evidence.EvidenceError as exc:
        raise RejectedError(exc.code, exc.detail) from exc
    try:
        ingest = attestation.verify(disclosure["attestation"], READINGS.name, envelope_bytes).signer
    except attestation.AttestationError as exc:
        raise RejectedError(f"reading-{exc.code}", exc.detail) from exc
    if ingest != reward["reading_attestor"]:
        raise RejectedError(
            "attestor-mismatch", "the envelope is attested by another key than the reward names"
        )
    try:
        reading, registration = envelope["reading"], envelope["registration"]
        if registration["owner"] != reward["wallet"]:
            raise RejectedError("wallet-mismatch", "the registration's owner is not the rewarded wallet")
        if registration["device_id"] != reading["device_id"]:
            raise RejectedError(
                "device-mismatch", "the registration is for another device than the reading's"
            )
        if reward["reading_id"] != reading_id(reading["device_id"], reading["seq"]):
            raise RejectedError(
                "reading-id-mismatch", "reading_id is not sha256('<device_id>/<seq>') of the reading"
            )
        if not isinstance(reading["values"], Mapping):
            raise RejectedError("malformed", "the reading's values are not an object")
    except (KeyError, TypeError) as exc:
        raise RejectedError("malformed", f"the envelope misses {exc}") from exc
    return envelope, ingest


def reward_transaction(
    value: Mapping[str, Any],
    oracle_attestation: Mapping[str, Any],
    timestamp: str,
    checked: tuple[bytes, str] | None = None,
) -> Transaction:
    """The transaction paying a (schema-valid) ``city.rewards.v1`` value's reward out of the rewards pool,
    with the disclosure the store keeps off the chain. Its record holds the public reward and the oracle's
    attestation, so anyone can check both again; its claim carries the reading's values, for the store's
    policy check. `checked`: the public reward's JCS bytes and the oracle whose attestation of them the caller
    checked already (a batch record's lines, `attestation.verify_covered`).

    Raises `RejectedError` if the reward's authorisation does not verify; the store checks the roles of the
    keys it rests on, and its claim under its policy, when it settles.
    """
    reward, disclosure = value["reward"], value["disclosure"]
    reward_bytes, signer = checked if checked is not None else (_canonical(reward), None)
    oracle = verify_public(reward, oracle_attestation, reward_bytes, signer)
    envelope, ingest = verify_disclosure(reward, disclosure)
    amount = reward["amount"]
    postings = [Posting(REWARDS_POOL, CITY, -amount), Posting(reward["wallet"], CITY, amount)]
    return build_transaction(
        REWARD,
        derive_tx_id(REWARD, reward["reward_id"]),
        postings,
        timestamp,
        requires=((oracle, Role.REWARDS_ORACLE), (ingest, Role.INGEST_ATTESTOR)),
        claim=claim_of(reward, envelope["reading"]["values"]),
        encoded={"reward": reward_bytes},  # canonicalised once, to check the oracle's attestation
        disclosure=Disclosure(reward["wallet"], orjson.dumps(disclosure)),
        attestation=dict(oracle_attestation),
    )


Prepared = tuple[Any, ...] | tuple[str, str] | tuple[str, str, str]
"""A reward's transaction as `Transaction.compact` (`COMPACT_FIELDS` fields), or the (code, detail) of why it
cannot settle, and for a batch record's line its own attestation (its header, were it a record alone)."""


def prepare_rewards(records: list[tuple[bytes, str | None]], timestamp: str) -> list[list[Prepared]]:
    """For each ``city.rewards.v1`` record, given its raw value and attestation header: the transaction of each
    reward it carries, or its rejection, in order. A record of one reward gives one; a batch record
    (`attestation.is_batch_record`) one a line, or a single rejection when the record as a whole is not what the
    oracle attested.

    CPU-bound (canonicalization, hash paths, an Ed25519 check per batch statement) and free of I/O, so it
    runs in worker processes: it takes the raw record bytes, which cross a process boundary far cheaper
    than parsed objects.
    """
    prepared: list[list[Prepared]] = []
    for raw, header in records:
        try:
            batch = attestation.is_batch_record(header, raw)
        except attestation.AttestationError:
            batch = False  # the single record's checks say why
        prepared.append(_batch(raw, header, timestamp) if batch else [_single(raw, header, timestamp)])
    return prepared


def _single(raw: bytes, header: str | None, timestamp: str) -> Prepared:
    """The transaction of a record of one reward (its attestation its own), or why it cannot settle."""
    try:
        reward = _valid(_decoded(raw))
        try:
            oracle_attestation = attestation.parse(header)
        except attestation.AttestationError as exc:
            raise RejectedError(f"reward-{exc.code}", exc.detail) from exc
        # Compact: it crosses back from a worker process, where a dataclass would cost more to unpickle than
        # the rest of the ledger process's work on it.
        return reward_transaction(reward, oracle_attestation, timestamp).compact()
    except RejectedError as exc:
        return (exc.code, exc.detail)


def _batch(raw: bytes, header: str | None, timestamp: str) -> list[Prepared]:
    """The transactions of a batch record's lines; a single rejection if a line does not parse or the record
    is not the one attested (nothing of it settles), else one a line (a line refused alone)."""
    try:
        values = [decode_json(line) for line in attestation.record_lines(raw)]
        covered = [attestation.encode(REWARDS.attested_part(value)) for value in values]
        line_attestations = attestation.verify_covered(header, REWARDS.name, covered)
    except attestation.AttestationError as exc:
        return [(f"reward-{exc.code}", exc.detail)]
    except (ValueError, KeyError, TypeError) as exc:  # a SignatureError (not canonical) is a ValueError
        return [("malformed", f"a line of the batch record has no reward to attest: {exc}")]
    prepared: list[Prepared] = []
    for value, part, line_attestation in zip(values, covered, line_attestations, strict=True):
        try:
            checked = (part, line_attestation["signer"])  # the tree's root verified: no path to fold again
            prepared.append(reward_transaction(_valid(value), line_attestation, timestamp, checked).compact())
        except RejectedError as exc:
            prepared.append((exc.code, exc.detail, orjson.dumps(line_attestation).decode()))
    return prepared


def _canonical(reward: Mapping[str, Any]) -> bytes:
    """The public reward's JCS bytes (what the oracle attests); raises `RejectedError` (not-canonical)."""
    try:
        return attestation.encode(reward)
    except signing.SignatureError as exc:
        raise RejectedError("not-canonical", str(exc)) from exc


def _decoded(raw: bytes) -> Any:
    """A record value's JSON; raises `RejectedError` (malformed-json)."""
    try:
        return decode_json(raw)
    except ValueError as exc:
        raise RejectedError("malformed-json", str(exc)) from exc


def _valid(value: Any) -> Any:
    """`value` if it fits the rewards schema; raises `RejectedError` (schema)."""
    try:
        schemas.validate(REWARDS, value)
    except schemas.SchemaError as exc:
        raise RejectedError("schema", str(exc)) from exc
    return value
