"""Reward policies on the chain, and what a reward may claim under one. The rules, as pure functions.

A policy publisher (a key holding that role) puts each policy the rewards service runs on the chain: a
record holding the signed document, named by its hash (`services.common.policy.Policy.hash`). A reward
names the hash of the policy it was decided under, and settles only if, under that policy:

- its rule is one of the policy's rules for the reading's kind;
- a reading of a kind the policy pays only when a city device attests it (``attested_by``) carries the
  receipt of a city device of one of those classes (ingest checked the receipt, and its attestation covers
  it; an auditor can check the receipt's signature again, ``services/common/receipts.py``);
- its amount is at most what the rule pays for the reading's values (the rewards service may pay less,
  when a cap cuts it); on the public chain, where the values are a commitment, at most what the rule pays
  for any values within the policy's bounds;
- the device's rewards in the reading's hour (by the device's pseudonym), and the wallet's in the reading's
  day (UTC, the reading's own time), stay within the policy's caps, counting what is already settled; and so
  do the person's in that day, across all their wallets, when the reward names the person its wallet was
  bound to (covered by ingest's attestation) and the policy has a ``person_per_day`` cap;
- it names a person if the policy requires wallets to be bound (``people.binding_required``).

The ledger checks this before it settles, with the disclosed values, holding the cap counters under lock; the
verifier checks it again by replaying the chain (`Caps`), with the values in auditor mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.common import signing
from services.common.policy import Policy, PolicyError, parse_policy
from services.common.roles import Role
from services.ledger.transactions import RejectedError, Transaction, build_transaction, derive_tx_id

POLICY = "policy"
DEVICE_HOUR = "device-hour"
WALLET_DAY = "wallet-day"
PERSON_DAY = "person-day"


@dataclass(frozen=True)
class RewardClaim:
    """What a reward claims under its policy: checked by `check_claim` against the caps' counters."""

    policy_hash: str
    kind: str
    rule: str
    amount: int
    values: Mapping[str, float] | None
    """The reading's values, when its evidence is disclosed (the ledger settling it, an auditor); None on
    the public chain, where the amount is checked against the most the rule pays."""
    device: str
    """The device's pseudonym (`services.common.evidence.device_pseudonym`): its hour cap counts by it."""
    wallet: str
    hour: int
    """Hours since the epoch of the reading's time."""
    day: int
    person: str | None = None
    """The person the wallet was bound to, as ingest attested it; None: not bound."""
    attester_class: str | None = None
    """The class of the city device whose receipt the reading carries (ingest checked it); None: no receipt."""

    @property
    def counters(self) -> tuple[tuple[str, str, int], ...]:
        """The cap counters it adds to, (scope, key, period): the device's hour, the wallet's day, and the
        person's day when it names a person, in the order `check_claim` takes what they counted."""
        counters = ((DEVICE_HOUR, self.device, self.hour), (WALLET_DAY, self.wallet, self.day))
        return counters if self.person is None else (*counters, (PERSON_DAY, self.person, self.day))


def claim_of(reward: Mapping[str, Any], values: Mapping[str, float] | None = None) -> RewardClaim:
    """The claim of a (schema-valid) public reward, with its reading's `values` when they are disclosed;
    raises `RejectedError` if its time is impossible."""
    try:
        at = datetime.fromisoformat(reward["earned_at"].replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise RejectedError("impossible-date", f"earned_at {reward['earned_at']!r}: {exc}") from exc
    return RewardClaim(
        policy_hash=reward["policy_hash"],
        kind=reward["kind"],
        rule=reward["rule"],
        amount=reward["amount"],
        values=values,
        device=reward["device"],
        wallet=reward["wallet"],
        hour=int(at // 3600),
        day=int(at // 86400),
        person=reward.get("person"),
        attester_class=reward.get("attested_by"),
    )


def check_claim(
    policy: Policy, claim: RewardClaim, device_paid: int, wallet_paid: int, person_paid: int = 0
) -> None:
    """Raise `RejectedError` unless `policy` allows the claim, given what the device was paid in its hour, the
    wallet in its day and the claim's person (if it names one) in that day before it."""
    if claim.policy_hash != policy.hash:
        raise RejectedError("unknown-policy", f"the policy is {policy.hash}, not {claim.policy_hash}")
    if policy.binding_required and claim.person is None:
        raise RejectedError(
            "unverified-person",
            f"policy {policy.version} pays only wallets bound to a person, and the reward names none",
        )
    pays = (
        policy.max_rule_amount(claim.kind, claim.rule)
        if claim.values is None
        else policy.rule_amount(claim.kind, claim.rule, claim.values)
    )
    if pays is None:
        raise RejectedError(
            "unknown-rule", f"policy {policy.version} has no rule {claim.rule!r} for kind {claim.kind!r}"
        )
    if (kind := policy.kinds[claim.kind]).attested_by and claim.attester_class not in kind.attested_by:
        raise RejectedError(
            "unattested",
            f"policy {policy.version} pays {claim.kind} only when a city device of class "
            f"{' or '.join(kind.attested_by)} attests the reading, and it carries no such receipt",
        )
    if claim.amount > pays:
        values = "any values" if claim.values is None else "these values"
        raise RejectedError(
            "above-policy", f"rule {claim.rule} pays at most {pays} for {values}, not {claim.amount}"
        )
    if device_paid + claim.amount > policy.device_per_hour:
        raise RejectedError(
            "cap-device-hour",
            f"the device would be paid {device_paid + claim.amount} in the hour, above the cap of "
            f"{policy.device_per_hour}",
        )
    if wallet_paid + claim.amount > policy.wallet_per_day:
        raise RejectedError(
            "cap-wallet-day",
            f"the wallet would be paid {wallet_paid + claim.amount} in the day, above the cap of "
            f"{policy.wallet_per_day}",
        )
    if (
        claim.person is not None
        and policy.person_per_day is not None
        and person_paid + claim.amount > policy.person_per_day
    ):
        raise RejectedError(
            "cap-person-day",
            f"the person would be paid {person_paid + claim.amount} in the day across their wallets, above "
            f"the cap of {policy.person_per_day}",
        )


@dataclass
class Caps:
    """What each device was paid per hour, and each wallet and person per day: the counters `check_claim`
    reads."""

    paid: dict[tuple[str, str, int], int] = field(default_factory=dict)

    def check_and_count(self, policy: Policy, claim: RewardClaim) -> None:
        """`check_claim` against these counters, then count the claim; raises `RejectedError`."""
        check_claim(policy, claim, *(self.paid.get(counter, 0) for counter in claim.counters))
        for counter in claim.counters:
            self.paid[counter] = self.paid.get(counter, 0) + claim.amount


def policy_tx_id(policy_hash: str) -> str:
    """One transaction per policy document, whoever publishes it."""
    return derive_tx_id(POLICY, policy_hash)


def parse_published(signed: Mapping[str, Any]) -> Policy:
    """The policy of a signed publication ``{"publisher", "document", "sig"}``; raises `RejectedError` if the
    signature or the document does not hold."""
    try:
        signing.verify(signed, "publisher")
    except signing.SignatureError as exc:
        raise RejectedError("bad-signature", f"not signed by its publisher: {exc}") from exc
    try:
        return parse_policy(signed["document"], "the policy document")
    except PolicyError as exc:
        raise RejectedError("bad-policy", str(exc)) from exc


def policy_transaction(signed: Mapping[str, Any], timestamp: str) -> tuple[Transaction, Policy]:
    """The chain record of a signed policy publication (no postings), resting on the publisher's role."""
    policy = parse_published(signed)
    tx = build_transaction(
        POLICY,
        policy_tx_id(policy.hash),
        [],
        timestamp,
        requires=((signed["publisher"], Role.POLICY_PUBLISHER),),
        policy=dict(signed),
        policy_hash=policy.hash,
    )
    return tx, policy
