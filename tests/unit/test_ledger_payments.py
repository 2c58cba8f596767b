"""Transfer, issuer-command and AID rules, judged on given facts (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.signing import Keypair
from services.ledger import payments
from services.ledger.accounts import AID_POOL, TREASURY, Posting
from services.ledger.payments import Facts, Grant, Merchant
from services.ledger.transactions import RejectedError

NOW = datetime(2026, 11, 21, 12, tzinfo=UTC)
TS = "2026-11-21T12:00:00.000Z"
ALICE, BOB, SHOP, ISSUER = (Keypair.generate() for _ in range(4))
LOCAL_FOOD = Merchant(
    SHOP.did, "food", locally_owned=True, active=True, accepts=frozenset({"CITY", "AID"}), verified=True
)


def transfer(amount: int = 10, currency: str = "CITY", to: str = BOB.did, nonce: int = 1) -> dict[str, Any]:
    return ALICE.sign({"from": ALICE.did, "to": to, "amount": amount, "currency": currency, "nonce": nonce})


def rejected(code: str, signed: dict[str, Any], facts: Facts) -> None:
    with pytest.raises(RejectedError) as caught:
        payments.plan_transfer(signed, facts, TS)
    assert caught.value.code == code


def grant(grant_id: str, remaining: int, categories: set[str], hours: float) -> Grant:
    return Grant(grant_id, ALICE.did, remaining, frozenset(categories), NOW + timedelta(hours=hours))


def test_a_transfer_moves_money_and_carries_its_signed_object() -> None:
    planned = payments.plan_transfer(transfer(), Facts(now=NOW), TS)
    assert planned.tx.postings == (Posting(ALICE.did, "CITY", -10), Posting(BOB.did, "CITY", 10))
    assert planned.tx.record["transfer"] == transfer()
    assert planned.tx.tx_id == payments.transfer_tx_id(ALICE.did, 1)
    assert (planned.signer, planned.nonce) == (ALICE.did, 1)


def test_each_rule_rejects_with_its_own_code() -> None:
    rejected("bad-signature", {**transfer(), "amount": 11}, Facts(now=NOW))
    rejected("stale-nonce", transfer(nonce=3), Facts(now=NOW, last_nonce=3))
    rejected("self-transfer", transfer(to=ALICE.did), Facts(now=NOW))
    rejected("account-frozen", transfer(), Facts(now=NOW, frozen=frozenset({BOB.did})))
    chain_store = Merchant(SHOP.did, "grocery", locally_owned=False, active=True, accepts=frozenset({"CITY"}))
    rejected("city-outside-community", transfer(to=SHOP.did), Facts(now=NOW, merchant=chain_store))
    rejected(
        "currency-not-accepted", transfer(currency="CREDIT", to=SHOP.did), Facts(now=NOW, merchant=LOCAL_FOOD)
    )
    closed = Merchant(SHOP.did, "food", locally_owned=True, active=False, accepts=frozenset({"CITY"}))
    rejected("merchant-inactive", transfer(to=SHOP.did), Facts(now=NOW, merchant=closed))
    rejected(
        "aid-merchants-only", transfer(currency="AID"), Facts(now=NOW, grants=[grant("g", 99, {"food"}, 1)])
    )
    claimed = Merchant(SHOP.did, "food", locally_owned=True, active=True, accepts=frozenset({"AID"}))
    facts = Facts(now=NOW, merchant=claimed, grants=[grant("g", 99, {"food"}, 1)])
    rejected("merchant-not-verified", transfer(currency="AID", to=SHOP.did), facts)


def test_aid_is_drawn_from_allowed_unexpired_grants_soonest_expiry_first() -> None:
    grants = [
        grant("late", 100, {"food", "shelter"}, 48),
        grant("soon", 30, {"food"}, 1),
        grant("expired", 500, {"food"}, -1),
        grant("transit-only", 500, {"transit"}, 1),
    ]
    facts = Facts(now=NOW, merchant=LOCAL_FOOD, grants=grants)
    planned = payments.plan_transfer(transfer(50, "AID", SHOP.did), facts, TS)
    assert planned.draws == (("soon", 30), ("late", 20))
    assert planned.tx.record["aid_draws"] == [
        {"grant_id": "soon", "amount": 30},
        {"grant_id": "late", "amount": 20},
    ]
    rejected("insufficient-aid", transfer(131, "AID", SHOP.did), facts)
    only_expired = Facts(now=NOW, merchant=LOCAL_FOOD, grants=[grants[2], grants[3]])
    rejected("aid-not-allowed", transfer(5, "AID", SHOP.did), only_expired)


def command(kind: str, signer: Keypair = ISSUER, **args: Any) -> dict[str, Any]:
    return signer.sign({"command": kind, "issuer": signer.did, "nonce": 1, **args})


def test_issuer_commands() -> None:
    facts = Facts(now=NOW, issuer_keys=frozenset({ISSUER.did}))
    with pytest.raises(RejectedError, match="not-an-issuer"):
        payments.plan_command(command("freeze", ALICE, account=BOB.did), facts, TS)
    mint = payments.plan_command(command("mint", to=ALICE.did, currency="CREDIT", amount=5), facts, TS)
    assert mint.tx.postings == (Posting(TREASURY, "CREDIT", -5), Posting(ALICE.did, "CREDIT", 5))
    with pytest.raises(RejectedError, match="aid-by-grant-only"):
        payments.plan_command(command("mint", to=ALICE.did, currency="AID", amount=5), facts, TS)
    expires = (NOW + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    granted = payments.plan_command(
        command("grant", holder=ALICE.did, amount=70, categories=["food"], expires_at=expires), facts, TS
    )
    assert granted.tx.postings == (Posting(AID_POOL, "AID", -70), Posting(ALICE.did, "AID", 70))
    assert granted.new_grant == Grant(
        granted.tx.tx_id, ALICE.did, 70, frozenset({"food"}), NOW + timedelta(days=30)
    )
    past = (NOW - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    with pytest.raises(RejectedError, match="already-expired"):
        payments.plan_command(
            command("grant", holder=ALICE.did, amount=1, categories=["food"], expires_at=past), facts, TS
        )
    revoke = command("revoke", grant_id="a" * 64)
    with pytest.raises(RejectedError, match="unknown-grant"):
        payments.plan_command(revoke, facts, TS)
    open_grant = Grant("a" * 64, ALICE.did, 40, frozenset({"food"}), NOW + timedelta(days=1))
    revoked = payments.plan_command(
        revoke, Facts(now=NOW, issuer_keys=facts.issuer_keys, grant=open_grant), TS
    )
    assert revoked.tx.postings == (Posting(ALICE.did, "AID", -40), Posting(AID_POOL, "AID", 40))
    assert revoked.close_grant == "a" * 64
    frozen = payments.plan_command(command("freeze", account=BOB.did), facts, TS)
    assert frozen.tx.postings == () and frozen.freeze == BOB.did


def test_expiry_returns_the_rest_to_the_aid_pool_once_per_grant() -> None:
    expired = grant("g1", 25, {"food"}, -1)
    tx = payments.plan_expiry(expired, TS)
    assert tx.postings == (Posting(ALICE.did, "AID", -25), Posting(AID_POOL, "AID", 25))
    assert tx.tx_id == payments.plan_expiry(expired, "2027-01-01T00:00:00Z").tx_id


def test_aid_holder_keys_stay_apart_from_wallets() -> None:
    """A grant to an account that held another currency is refused (it would name a wallet as receiving AID),
    and an account holding grants moves AID alone, so nobody can make a holder key look like a wallet."""
    facts = Facts(now=NOW, issuer_keys=frozenset({ISSUER.did}))
    expires = (NOW + timedelta(days=30)).isoformat().replace("+00:00", "Z")
    grant_to_alice = command("grant", holder=ALICE.did, amount=70, categories=["food"], expires_at=expires)
    for held in ({"CITY"}, {"AID", "CREDIT"}):
        wallet_facts = Facts(now=NOW, issuer_keys=facts.issuer_keys, recipient_currencies=frozenset(held))
        with pytest.raises(RejectedError, match="holder-is-a-wallet"):
            payments.plan_command(grant_to_alice, wallet_facts, TS)
    holding_aid = Facts(now=NOW, issuer_keys=facts.issuer_keys, recipient_currencies=frozenset({"AID"}))
    assert payments.plan_command(grant_to_alice, holding_aid, TS).new_grant is not None

    alice_holds_grants = frozenset({ALICE.did})
    rejected("aid-holder-aid-only", transfer(), Facts(now=NOW, aid_holders=alice_holds_grants))
    rejected(
        "aid-holder-aid-only", transfer(currency="CREDIT"), Facts(now=NOW, aid_holders=frozenset({BOB.did}))
    )
    spend = Facts(
        now=NOW,
        merchant=LOCAL_FOOD,
        grants=[grant("g", 99, {"food"}, 1)],
        aid_holders=alice_holds_grants,
    )
    assert payments.plan_transfer(transfer(5, "AID", SHOP.did), spend, TS).draws == (("g", 5),)
