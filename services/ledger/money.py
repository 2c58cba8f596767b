"""What a record's signed authorisation allows it to move, and the id it must have (pure).

The verifier replays the chain with these: a record's postings must be exactly the ones its authorisation
names (a transfer's from, to, amount and currency; an issuer command's accounts and amount; a reward's
wallet and amount out of the rewards pool), and its tx_id the one derived from it, so a row changed in the
ledger's database, or a record whose money differs from what was signed, is found out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from services.ledger import anchors, authority, payments, policies
from services.ledger.accounts import AID, AID_POOL, CITY, POOLS, REWARDS_POOL, TREASURY
from services.ledger.transactions import GENESIS, GENESIS_TX_ID, REWARD, RejectedError, derive_tx_id

Postings = list[tuple[str, str, int]]


def _moves(source: str, target: str, currency: str, amount: int) -> Postings:
    return [(source, currency, -amount), (target, currency, amount)]


def authorised_postings(record: Mapping[str, Any], grant_wallet: Callable[[str], str]) -> Postings:
    """The postings (account, currency, amount) the record's authorisation allows; `grant_wallet` names the
    wallet of an AID grant on the chain before it. Raises `RejectedError` for an unknown kind of record."""
    kind = record["type"]
    if kind == GENESIS:
        supply = next(p["amount"] for p in record["postings"] if p["account"] == REWARDS_POOL)
        return _moves(TREASURY, REWARDS_POOL, CITY, supply)
    if kind == REWARD:
        reward = record["reward"]
        return _moves(REWARDS_POOL, reward["wallet"], CITY, reward["amount"])
    if kind == payments.TRANSFER:
        t = record["transfer"]
        return _moves(t["from"], t["to"], t["currency"], t["amount"])
    if kind == payments.ISSUER:
        c = record["command"]
        if c["command"] == "mint":
            return _moves(TREASURY, c["to"], c["currency"], c["amount"])
        if c["command"] == "fund":
            return _moves(TREASURY, POOLS[c["pool"]], c["currency"], c["amount"])
        if c["command"] == "grant":
            return _moves(AID_POOL, c["holder"], AID, c["amount"])
        if c["command"] == "revoke":
            # How much is left of the grant is the AID audit's to check.
            return _moves(grant_wallet(c["grant_id"]), AID_POOL, AID, _returned(record))
        return []
    if kind == payments.AID_EXPIRY:
        return _moves(grant_wallet(record["grant_id"]), AID_POOL, AID, _returned(record))
    if kind in (authority.AUTHORITY, policies.POLICY, anchors.ANCHOR):
        return []
    raise RejectedError("unknown-type", f"no rule for records of type {kind!r}")


def expected_tx_id(record: Mapping[str, Any]) -> str:
    """The tx_id derived from what the record settles."""
    kind = record["type"]
    if kind == GENESIS:
        return GENESIS_TX_ID
    if kind == REWARD:
        return derive_tx_id(REWARD, record["reward"]["reward_id"])
    if kind == payments.TRANSFER:
        return payments.transfer_tx_id(record["transfer"]["from"], record["transfer"]["nonce"])
    if kind == payments.ISSUER:
        return payments.issuer_tx_id(record["command"]["issuer"], record["command"]["nonce"])
    if kind == payments.AID_EXPIRY:
        return derive_tx_id(payments.AID_EXPIRY, record["grant_id"])
    if kind == authority.AUTHORITY:
        body = record["authority"]
        if body.get("command") == authority.BOOTSTRAP:
            return authority.BOOTSTRAP_TX_ID
        return authority.command_tx_id(body["root"], body["nonce"])
    if kind == policies.POLICY:
        return policies.policy_tx_id(record["policy_hash"])
    if kind == anchors.ANCHOR:
        return anchors.anchor_tx_id(record["anchor"])
    raise RejectedError("unknown-type", f"no rule for records of type {kind!r}")


def check_money(record: Mapping[str, Any], grant_wallet: Callable[[str], str]) -> None:
    """Raise `RejectedError` unless the record's postings and tx_id are exactly what its authorisation
    allows."""
    found = sorted((p["account"], p["currency"], p["amount"]) for p in record.get("postings", []))
    allowed = sorted(authorised_postings(record, grant_wallet))
    if found != allowed:
        raise RejectedError(
            "unauthorised-postings",
            f"its postings {found} are not the ones its authorisation allows {allowed}",
        )
    if record.get("tx_id") != (expected := expected_tx_id(record)):
        raise RejectedError("tx-id-mismatch", f"its tx_id is not {expected}, the one derived from it")


def _returned(record: Mapping[str, Any]) -> int:
    return sum(p["amount"] for p in record["postings"] if p["currency"] == AID and p["amount"] > 0)
