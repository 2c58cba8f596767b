"""The verifier's rules (`services.ledger.verifier`), pure: what each record's signatures and attestations rest
on (`authorise`, independent of every other record, so worker processes run it side by side), the chain's
records folded in leaf order (`Replay`: roles, money, policies, caps, AID), and the root of the leaves so far
(`Frontier`). The verifier fetches what they check through the ledger's HTTP API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from services.common import memos, merkle, receipts, signing
from services.common.policy import Policy, PolicyError, parse_policy
from services.common.roles import Role
from services.ledger import payments
from services.ledger.accounts import Posting, PostingError, check_postings
from services.ledger.aid_audit import AidAudit
from services.ledger.anchors import ANCHOR, check_anchor
from services.ledger.authority import Authority
from services.ledger.money import check_money
from services.ledger.policies import POLICY, Caps, RewardClaim, claim_of, parse_published
from services.ledger.rewards import verify_disclosure, verify_public
from services.ledger.transactions import REWARD, RejectedError


class Discrepancy(Exception):
    """What the verifier found wrong, and where."""


@dataclass(frozen=True)
class Found:
    """What `authorise` found in a record: the (key, role) pairs its signatures rest on and, for a reward
    whose evidence an auditor saw, its reading's values; or why it fails (`error`)."""

    signers: list[tuple[str, str]] = field(default_factory=list)
    values: dict[str, float] | None = None
    error: str | None = None


Disclosed = dict[str, Any] | None
"""A reward's disclosure as the ledger serves it to auditors (``salt``, ``envelope``, ``attestation``, or
``erased_at`` once erased); None: not asked for (public mode) or not a reward."""


def authorise(items: list[tuple[bytes, Disclosed]], deep: bool) -> list[Found]:
    """The signature and attestation checks of each record (with its disclosure, in auditor mode), which
    depend on nothing before it (pure, so a pool of processes runs them side by side); roles, money, caps and
    grants are `Replay`'s, in order."""
    found: list[Found] = []
    for leaf, disclosure in items:
        try:
            found.append(_signers(orjson.loads(leaf), disclosure, deep))
        except (RejectedError, signing.SignatureError, ValueError, KeyError, TypeError) as exc:
            found.append(Found(error=f"its authorisation does not verify: {exc}"))
    return found


def _check_memo(signed: dict[str, Any], disclosure: Disclosed) -> None:
    """In auditor mode, the memo the ledger keeps for a signed transfer or command (unless erased) opens the
    ``memo_digest`` it signed; raises `memos.MemoError` (a ValueError) or `RejectedError`."""
    if disclosure is None or disclosure.get("erased_at") is not None:
        return
    if memos.DIGEST_FIELD not in signed:
        raise RejectedError(
            "memo-without-digest", "the ledger keeps a memo its signed object commits to nothing"
        )
    memos.open_memo(disclosure[memos.DISCLOSURE_FIELD], signed[memos.DIGEST_FIELD])


def _signers(record: dict[str, Any], disclosure: Disclosed, deep: bool) -> Found:
    kind = record.get("type")
    if kind == REWARD:
        reward = record["reward"]
        oracle = verify_public(reward, record["attestation"])
        signers = [(oracle, Role.REWARDS_ORACLE), (reward["reading_attestor"], Role.INGEST_ATTESTOR)]
        if disclosure is None or disclosure.get("erased_at") is not None:
            return Found(signers)  # the public checks: the oracle's word on its evidence (or it was erased)
        envelope, _ingest = verify_disclosure(reward, disclosure)
        if deep:
            signing.verify(envelope["reading"], "device_id")
            signing.verify(envelope["registration"], "owner", remember=True)
            if receipts.RECEIPT_FIELD in envelope["reading"]:  # a city device's receipt (ReceiptError)
                receipts.check(envelope["reading"])
        return Found(signers, dict(envelope["reading"]["values"]))
    if kind == payments.TRANSFER:
        signing.verify(record["transfer"], "from")
        _check_memo(record["transfer"], disclosure)
    elif kind == payments.ISSUER:
        signing.verify(record["command"], "issuer")
        _check_memo(record["command"], disclosure)
        return Found([(record["command"]["issuer"], Role.ISSUER)])
    elif kind == POLICY:
        policy = parse_published(record["policy"])
        if policy.hash != record.get("policy_hash"):
            raise RejectedError(
                "policy-mismatch", f"its document is {policy.hash}, not {record.get('policy_hash')}"
            )
        return Found([(record["policy"]["publisher"], Role.POLICY_PUBLISHER)])
    elif kind == ANCHOR:  # a Merkle root of records kept off the chain (consent receipts)
        return Found([check_anchor(record["anchor"])])
    return Found()


@dataclass
class Replay:
    """What the chain's records say, folded in leaf order: who holds which role, the policies on the chain,
    what each device and wallet was paid against the caps, and the AID grants."""

    held: Authority = field(default_factory=Authority)
    policies: dict[str, Policy] = field(default_factory=dict)
    caps: Caps = field(default_factory=Caps)
    aid: AidAudit = field(default_factory=AidAudit)
    cut: list[tuple[str, RewardClaim, Policy]] = field(default_factory=list)
    """Disclosed rewards paid less than their rule pays: each must end where a cap of it is full."""

    def apply(self, record: dict[str, Any], found: Found) -> None:
        """Fold in a record whose signatures `authorise` checked: its signers held their roles as of the
        records before it, its postings balance and are exactly what its authorisation allows, its tx_id
        derives from it, a reward is within the policy it names and its caps, AID moves as its grant allows.
        A reward whose values were disclosed (auditor mode) is recomputed: it pays what its rule pays for
        them, or less only where a cap cut it (`check_cuts`, once every record is in).
        Raises `Discrepancy` (or the AID audit's error)."""
        if found.error is not None:
            raise Discrepancy(found.error)
        signers = found.signers
        try:
            postings = [Posting(p["account"], p["currency"], p["amount"]) for p in record.get("postings", [])]
            if postings:
                check_postings(postings)
            for key, role in signers:
                if not self.held.holds(key, role):
                    raise Discrepancy(f"{key} did not hold the {role} role when it was sealed")
            check_money(record, self.aid.wallet_of)
            kind = record.get("type")
            if kind == REWARD:
                claim = claim_of(record["reward"], found.values)
                if (policy := self.policies.get(claim.policy_hash)) is None:
                    raise Discrepancy(f"its policy {claim.policy_hash} is not on the chain before it")
                self.caps.check_and_count(policy, claim)
                if found.values is not None:
                    full = policy.rule_amount(claim.kind, claim.rule, found.values)
                    if claim.amount != full:
                        self.cut.append((record["tx_id"], claim, policy))
            elif kind == POLICY:  # its signature is `authorise`'s, already checked
                policy = parse_policy(record["policy"]["document"], "the policy document")
                self.policies[policy.hash] = policy
            self.held = self.held.apply(record)
            self.aid.apply(record)
        except (PostingError, PolicyError, RejectedError, signing.SignatureError, KeyError, TypeError) as exc:
            raise Discrepancy(f"its authorisation does not verify: {exc}") from exc

    def check_cuts(self) -> None:
        """Every disclosed reward paid less than its rule pays had a cap cut it: one of its caps (its device's
        hour, its wallet's or person's day) is exactly full once the whole chain is counted, as the rewards
        service cuts a payment to what a cap leaves. Raises `Discrepancy`."""
        for tx_id, claim, policy in self.cut:
            limits = [policy.device_per_hour, policy.wallet_per_day]
            if claim.person is not None and policy.person_per_day is not None:
                limits.append(policy.person_per_day)
            paid = [self.caps.paid.get(counter, 0) for counter in claim.counters]
            if not any(total == limit for total, limit in zip(paid, limits, strict=False)):
                raise Discrepancy(
                    f"transaction {tx_id}: pays {claim.amount}, less than its rule pays for its disclosed "
                    "values, and no cap of it is full"
                )


class Frontier:
    """The roots of the perfect subtrees of the leaves so far: the RFC 9162 root of any prefix of the log in
    O(log n), from the leaves alone."""

    def __init__(self) -> None:
        self._nodes: list[tuple[int, bytes]] = []  # (size, hash), sizes strictly decreasing
        self.size = 0

    def append(self, leaf_hash: bytes) -> None:
        node = (1, leaf_hash)
        while self._nodes and self._nodes[-1][0] == node[0]:
            size, left = self._nodes.pop()
            node = (size * 2, merkle.node_hash(left, node[1]))
        self._nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self._nodes:
            return merkle.EMPTY_ROOT
        root = self._nodes[-1][1]
        for _, left in reversed(self._nodes[:-1]):
            root = merkle.node_hash(left, root)
        return root
