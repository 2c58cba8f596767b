"""The AID audit of a replayed chain, on records made by the ledger's own planners (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.signing import Keypair
from services.ledger import payments
from services.ledger.aid_audit import AidAudit, AidDiscrepancy
from services.ledger.payments import Facts, Grant, Merchant

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
EXPIRES = NOW + timedelta(hours=1)
ALICE, BOB, SHOP, ISSUER = (Keypair.generate() for _ in range(4))
FOOD = Merchant(SHOP.did, "food", locally_owned=True, active=True, accepts=frozenset({"AID"}), verified=True)


def ts(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def command(kind: str, nonce: int, **fields: Any) -> dict[str, Any]:
    return ISSUER.sign({"issuer": ISSUER.did, "command": kind, "nonce": nonce, **fields})


def issued(kind: str, nonce: int, grant: Grant | None = None, **fields: Any) -> dict[str, Any]:
    facts = Facts(now=NOW, issuer_keys=frozenset({ISSUER.did}), last_nonce=nonce - 1, grant=grant)
    return payments.plan_command(command(kind, nonce, **fields), facts, ts(NOW)).tx.record


def grant_of(record: dict[str, Any], remaining: int, wallet: str = ALICE.did) -> Grant:
    return Grant(record["tx_id"], wallet, remaining, frozenset({"food"}), EXPIRES)


def spend(grant: Grant, amount: int, nonce: int, at: datetime = NOW) -> dict[str, Any]:
    signed = ALICE.sign(
        {"from": ALICE.did, "to": SHOP.did, "amount": amount, "currency": "AID", "nonce": nonce}
    )
    facts = Facts(now=at, merchant=FOOD, grants=[grant], last_nonce=nonce - 1)
    return payments.plan_transfer(signed, facts, ts(at)).tx.record


def granted(amount: int = 500) -> dict[str, Any]:
    return issued("grant", 1, holder=ALICE.did, amount=amount, categories=["food"], expires_at=ts(EXPIRES))


def test_a_grant_spent_revoked_and_another_expired_passes() -> None:
    audit = AidAudit()
    first = granted()
    audit.apply(first)
    audit.apply(spend(grant_of(first, 500), 200, 1))
    audit.apply(issued("revoke", 2, grant=grant_of(first, 300), grant_id=first["tx_id"]))
    second = issued("grant", 3, holder=ALICE.did, amount=70, categories=["food"], expires_at=ts(EXPIRES))
    audit.apply(second)
    audit.apply(payments.plan_expiry(grant_of(second, 70), ts(EXPIRES)).record)


def test_an_expiry_before_the_grant_expires_is_named() -> None:
    audit = AidAudit()
    record = granted()
    audit.apply(record)
    early = payments.plan_expiry(grant_of(record, 500), ts(EXPIRES - timedelta(minutes=1))).record
    with pytest.raises(AidDiscrepancy, match="before it expires"):
        audit.apply(early)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda r: r["postings"][1].update(amount=r["postings"][1]["amount"] - 1), "not the 300 left"),
        (lambda r: r.update(grant_id="f" * 64), "is not open"),
        (lambda r: r.update(expired_at=r["timestamp"]), "not its grant's"),
    ],
)
def test_an_expiry_that_returns_other_than_what_is_left_is_named(tamper: Any, message: str) -> None:
    audit = AidAudit()
    record = granted()
    audit.apply(record)
    audit.apply(spend(grant_of(record, 500), 200, 1))
    expiry = payments.plan_expiry(grant_of(record, 300), ts(EXPIRES + timedelta(minutes=1))).record
    tamper(expiry)
    with pytest.raises(AidDiscrepancy, match=message):
        audit.apply(expiry)


def test_spending_beyond_a_grant_after_its_expiry_or_twice_closed_is_named() -> None:
    audit = AidAudit()
    record = granted(100)
    audit.apply(record)
    overdrawn = spend(grant_of(record, 150), 150, 1)  # planned on facts claiming more than was granted
    with pytest.raises(AidDiscrepancy, match="which holds 100"):
        audit.apply(overdrawn)
    late = spend(grant_of(record, 100), 50, 1, at=EXPIRES - timedelta(seconds=1))
    late["timestamp"] = ts(EXPIRES)
    with pytest.raises(AidDiscrepancy, match="after it expired"):
        audit.apply(late)
    audit.apply(issued("revoke", 2, grant=grant_of(record, 100), grant_id=record["tx_id"]))
    with pytest.raises(AidDiscrepancy, match="is not open"):
        audit.apply(spend(grant_of(record, 100), 10, 2))


def test_a_draw_on_another_wallets_grant_is_named() -> None:
    audit = AidAudit()
    bobs = issued("grant", 1, holder=BOB.did, amount=100, categories=["food"], expires_at=ts(EXPIRES))
    audit.apply(bobs)
    with pytest.raises(AidDiscrepancy, match="of another wallet"):
        audit.apply(spend(grant_of(bobs, 100, wallet=ALICE.did), 10, 1))


def test_holder_keys_mixed_with_wallets_are_named() -> None:
    """A grant to an account that held CITY, and CITY moved to a grant holder, are each named, however the
    records reached the chain."""
    city = payments.plan_transfer(
        BOB.sign({"from": BOB.did, "to": ALICE.did, "amount": 5, "currency": "CITY", "nonce": 1}),
        Facts(now=NOW),
        ts(NOW),
    ).tx.record
    audit = AidAudit()
    audit.apply(city)
    with pytest.raises(AidDiscrepancy, match="which held another currency"):
        audit.apply(granted())

    audit = AidAudit()
    audit.apply(granted())
    with pytest.raises(AidDiscrepancy, match="a grant holder"):
        audit.apply(city)
