"""Peer-to-peer transfers, issuer commands and AID grants: the rules, as pure functions (no I/O).

The store gathers the facts a signed object is judged on (the sender's last nonce, frozen accounts, the
recipient's merchant facts, the sender's AID grants) under lock, and these functions decide: a
`Planned` transaction with its side effects, or a `RejectedError` whose code says which rule refused it.
The signed object itself goes into the transaction record, so anyone can re-verify who authorised it.

Currency rules:
- CITY stays inside the community: it moves between wallets, and reaches a merchant only if the
  directory lists it as active and locally owned;
- AID moves only to an active merchant the city verified (so its category is the city's finding, not a
  claim), of a category one of the sender's grants allows, before that grant expires; it is drawn from the grants that allow the category, soonest expiry first;
- a merchant takes only the currencies it accepts;
- AID is granted to a person's AID holder key (`services.common.aid_holder`), never to their wallet, so the
  public chain does not tell whose wallet receives AID: a grant to an account that ever held another
  currency is refused, and an account holding grants moves nothing but AID (else anyone who knows a holder
  key, which grants show, could make it look like a wallet, or block the person's next grant).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.common import signing
from services.ledger.accounts import AID, AID_POOL, CITY, POOLS, TREASURY, Posting
from services.ledger.transactions import RejectedError, Transaction, build_transaction, derive_tx_id

TRANSFER = "transfer"
ISSUER = "issuer"
AID_EXPIRY = "aid-expiry"


@dataclass(frozen=True)
class Merchant:
    """What the directory says about a merchant wallet (the latest ``city.merchants.v1`` value)."""

    wallet: str
    category: str
    locally_owned: bool
    active: bool
    accepts: frozenset[str]
    verified: bool = False
    """Category and ownership are the city's findings, not only the owner's claims."""


@dataclass(frozen=True)
class Grant:
    """An AID grant: what is left of it, where it may be spent, and until when."""

    grant_id: str
    wallet: str
    remaining: int
    categories: frozenset[str]
    expires_at: datetime


@dataclass(frozen=True)
class Facts:
    """What a signed object is judged on, read by the store under lock."""

    now: datetime
    last_nonce: int = 0
    frozen: frozenset[str] = frozenset()
    merchant: Merchant | None = None
    grants: Sequence[Grant] = ()
    issuer_keys: frozenset[str] = frozenset()
    grant: Grant | None = None
    """For a revoke: the grant it names."""
    recipient_currencies: frozenset[str] = frozenset()
    """The currencies the recipient's account (a transfer's `to`, a grant's holder) has ever held."""
    aid_holders: frozenset[str] = frozenset()
    """Which of the signer and the recipient have been granted AID."""


@dataclass(frozen=True)
class Planned:
    """A transaction to settle and what else settling it changes."""

    tx: Transaction
    signer: str
    nonce: int
    draws: tuple[tuple[str, int], ...] = ()
    """(grant_id, amount) drawn from AID grants."""
    new_grant: Grant | None = None
    close_grant: str | None = None
    freeze: str | None = None
    unfreeze: str | None = None


def transfer_tx_id(sender: str, nonce: int) -> str:
    """One id per (sender, nonce): a retried transfer maps to its original, a replayed nonce collides."""
    return derive_tx_id(TRANSFER, f"{sender}/{nonce}")


def issuer_tx_id(issuer: str, nonce: int) -> str:
    return derive_tx_id(ISSUER, f"{issuer}/{nonce}")


def parse_time(text: str) -> datetime:
    """An RFC 3339 UTC time (schema-checked) as an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _check_signature(obj: Mapping[str, Any], signer_field: str) -> None:
    try:
        signing.verify(obj, signer_field)
    except signing.SignatureError as exc:
        raise RejectedError("bad-signature", f"not signed by {signer_field}: {exc}") from exc


def _check_nonce(nonce: int, last: int) -> None:
    if nonce <= last:
        raise RejectedError("stale-nonce", f"nonce {nonce} is not above the last accepted nonce {last}")


def aid_draws(grants: Sequence[Grant], category: str, amount: int, now: datetime) -> list[tuple[str, int]]:
    """Draw `amount` AID from the grants usable at a merchant of `category` now, soonest expiry first."""
    usable = sorted(
        (g for g in grants if g.remaining > 0 and g.expires_at > now and category in g.categories),
        key=lambda g: (g.expires_at, g.grant_id),
    )
    if not usable:
        raise RejectedError(
            "aid-not-allowed", f"no unexpired AID grant allows spending at a {category} merchant"
        )
    draws: list[tuple[str, int]] = []
    left = amount
    for grant in usable:
        take = min(left, grant.remaining)
        draws.append((grant.grant_id, take))
        left -= take
        if not left:
            return draws
    raise RejectedError(
        "insufficient-aid",
        f"grants usable at a {category} merchant hold {amount - left} of {amount} micro-AID",
    )


def plan_transfer(transfer: Mapping[str, Any], facts: Facts, timestamp: str) -> Planned:
    """Judge a (schema-valid) signed transfer; raise `RejectedError` naming the rule it breaks."""
    _check_signature(transfer, "from")
    sender, recipient = transfer["from"], transfer["to"]
    amount, currency, nonce = transfer["amount"], transfer["currency"], transfer["nonce"]
    _check_nonce(nonce, facts.last_nonce)
    if sender == recipient:
        raise RejectedError("self-transfer", "a transfer moves money between two different accounts")
    if currency != AID and (holders := facts.aid_holders & {sender, recipient}):
        raise RejectedError(
            "aid-holder-aid-only", f"{min(holders)} holds AID grants: it moves nothing but AID"
        )
    for account in (sender, recipient):
        if account in facts.frozen:
            raise RejectedError("account-frozen", f"{account} is frozen")
    merchant = facts.merchant
    if merchant is not None:
        if not merchant.active:
            raise RejectedError("merchant-inactive", f"{recipient} is no longer an active merchant")
        if currency not in merchant.accepts:
            raise RejectedError("currency-not-accepted", f"the merchant does not accept {currency}")
    if currency == CITY and merchant is not None and not merchant.locally_owned:
        raise RejectedError("city-outside-community", "CITY reaches only locally owned merchants")
    draws: list[tuple[str, int]] = []
    if currency == AID:
        if merchant is None:
            raise RejectedError(
                "aid-merchants-only", "AID is spent only at merchants of the allowed categories"
            )
        if not merchant.verified:
            raise RejectedError("merchant-not-verified", "AID is spent only at merchants the city verified")
        draws = aid_draws(facts.grants, merchant.category, amount, facts.now)
    postings = [Posting(sender, currency, -amount), Posting(recipient, currency, amount)]
    body: dict[str, Any] = {"transfer": dict(transfer)}
    if draws:
        body["aid_draws"] = [{"grant_id": g, "amount": a} for g, a in draws]
    tx = build_transaction(TRANSFER, transfer_tx_id(sender, nonce), postings, timestamp, **body)
    return Planned(tx, sender, nonce, draws=tuple(draws))


def plan_command(command: Mapping[str, Any], facts: Facts, timestamp: str) -> Planned:
    """Judge a (schema-valid) signed issuer command; raise `RejectedError` naming what refused it."""
    issuer = command["issuer"]
    if issuer not in facts.issuer_keys:
        raise RejectedError("not-an-issuer", f"{issuer} does not hold the issuer role")
    _check_signature(command, "issuer")
    nonce = command["nonce"]
    _check_nonce(nonce, facts.last_nonce)
    tx_id = issuer_tx_id(issuer, nonce)
    kind = command["command"]
    body = {"command": dict(command)}
    if kind in ("mint", "fund"):
        target = command["to"] if kind == "mint" else POOLS[command["pool"]]
        amount, currency = command["amount"], command["currency"]
        if kind == "mint" and currency == AID:
            # AID reaches people only through grants, which carry its restrictions.
            raise RejectedError(
                "aid-by-grant-only", "AID is given to a person with a grant, not minted to them"
            )
        postings = [Posting(TREASURY, currency, -amount), Posting(target, currency, amount)]
        return Planned(build_transaction(ISSUER, tx_id, postings, timestamp, **body), issuer, nonce)
    if kind == "grant":
        expires_at = parse_time(command["expires_at"])
        if expires_at <= facts.now:
            raise RejectedError("already-expired", "a grant must expire in the future")
        if held := facts.recipient_currencies - {AID}:
            raise RejectedError(
                "holder-is-a-wallet",
                f"{command['holder']} has held {', '.join(sorted(held))}: grant AID to the person's AID "
                "holder key, which holds nothing else, so the chain does not tell whose wallet receives AID",
            )
        amount = command["amount"]
        postings = [Posting(AID_POOL, AID, -amount), Posting(command["holder"], AID, amount)]
        grant = Grant(tx_id, command["holder"], amount, frozenset(command["categories"]), expires_at)
        tx = build_transaction(ISSUER, tx_id, postings, timestamp, **body)
        return Planned(tx, issuer, nonce, new_grant=grant)
    if kind == "revoke":
        grant = facts.grant
        if grant is None:
            raise RejectedError("unknown-grant", f"no open grant {command['grant_id']}")
        if grant.remaining == 0:
            raise RejectedError("grant-spent", "nothing of the grant is left to revoke")
        postings = [Posting(grant.wallet, AID, -grant.remaining), Posting(AID_POOL, AID, grant.remaining)]
        tx = build_transaction(ISSUER, tx_id, postings, timestamp, **body)
        return Planned(
            tx, issuer, nonce, draws=((grant.grant_id, grant.remaining),), close_grant=grant.grant_id
        )
    account = command["account"]
    tx = build_transaction(ISSUER, tx_id, [], timestamp, **body)
    if kind == "freeze":
        return Planned(tx, issuer, nonce, freeze=account)
    return Planned(tx, issuer, nonce, unfreeze=account)


def plan_expiry(grant: Grant, timestamp: str) -> Transaction:
    """The transaction returning an expired grant's unspent AID to the aid pool.

    Authorised by the signed grant command already on the chain (its ``expires_at``); one id per grant.
    """
    postings = [Posting(grant.wallet, AID, -grant.remaining), Posting(AID_POOL, AID, grant.remaining)]
    return build_transaction(
        AID_EXPIRY,
        derive_tx_id(AID_EXPIRY, grant.grant_id),
        postings,
        timestamp,
        grant_id=grant.grant_id,
        expired_at=grant.expires_at.isoformat().replace("+00:00", "Z"),
    )
