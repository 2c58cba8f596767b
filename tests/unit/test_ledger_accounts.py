"""Accounts and the double-entry rules."""

from __future__ import annotations

import pytest

from services.common.signing import Keypair
from services.ledger.accounts import (
    REWARDS_POOL,
    TREASURY,
    AccountError,
    Funds,
    InsufficientFundsError,
    Posting,
    PostingError,
    check_account,
    check_postings,
    is_issuer,
    is_wallet,
    net_changes,
    touched_accounts,
)

ALICE = Keypair.generate().did
BOB = Keypair.generate().did


def test_accounts_are_wallets_or_system_accounts() -> None:
    assert check_account(ALICE) == ALICE
    assert check_account(TREASURY) == TREASURY
    assert is_wallet(ALICE) and not is_wallet(REWARDS_POOL)
    assert is_issuer(TREASURY) and not is_issuer(REWARDS_POOL) and not is_issuer(ALICE)
    for bad in ("", "alice", "city:nobody", "did:key:z6Mkxyz", ALICE[:-1], 42, None, [ALICE], {"did": ALICE}):
        with pytest.raises(AccountError):
            check_account(bad)


def test_balanced_postings_pass() -> None:
    check_postings([Posting(REWARDS_POOL, "CITY", -7), Posting(ALICE, "CITY", 7)])
    check_postings(
        [
            Posting(ALICE, "CITY", -7),
            Posting(BOB, "CITY", 7),
            Posting(TREASURY, "AID", -3),
            Posting(ALICE, "AID", 3),
        ]
    )


@pytest.mark.parametrize(
    ("postings", "message"),
    [
        ([Posting(REWARDS_POOL, "CITY", -7), Posting(ALICE, "CITY", 6)], "do not balance"),
        ([Posting(REWARDS_POOL, "CITY", -7), Posting(ALICE, "AID", 7)], "do not balance"),
        ([Posting(REWARDS_POOL, "CITY", 0), Posting(ALICE, "CITY", 0)], "non-zero"),
        ([Posting(REWARDS_POOL, "EUR", -1), Posting(ALICE, "EUR", 1)], "currency"),
        ([Posting(ALICE, "CITY", -1), Posting(ALICE, "CITY", 1)], "twice"),
        ([Posting(REWARDS_POOL, "CITY", -1), Posting("nobody", "CITY", 1)], "did:key"),
        ([Posting(REWARDS_POOL, "CITY", 1.0), Posting(ALICE, "CITY", -1)], "integer"),  # type: ignore[arg-type]
        ([], "at least two"),
    ],
)
def test_malformed_postings_are_refused(postings: list[Posting], message: str) -> None:
    with pytest.raises(PostingError, match=message):
        check_postings(postings)


def test_funds_refuse_overdrafts_but_let_issuers_go_negative() -> None:
    funds = Funds({(REWARDS_POOL, "CITY"): 10})
    funds.apply([Posting(REWARDS_POOL, "CITY", -6), Posting(ALICE, "CITY", 6)])
    with pytest.raises(InsufficientFundsError) as caught:
        funds.apply([Posting(REWARDS_POOL, "CITY", -5), Posting(BOB, "CITY", 5)])
    assert (caught.value.account, caught.value.balance, caught.value.amount) == (REWARDS_POOL, 4, 5)
    # The refused transaction changed nothing; a smaller one still fits exactly.
    assert funds.balance(BOB, "CITY") == 0
    funds.apply([Posting(REWARDS_POOL, "CITY", -4), Posting(BOB, "CITY", 4)])
    assert funds.balance(REWARDS_POOL, "CITY") == 0
    funds.apply([Posting(TREASURY, "CITY", -(10**15)), Posting(REWARDS_POOL, "CITY", 10**15)])
    assert funds.balance(TREASURY, "CITY") == -(10**15)
    with pytest.raises(InsufficientFundsError):
        funds.apply([Posting(ALICE, "CITY", -7), Posting(BOB, "CITY", 7)])


def test_net_changes_and_touched_accounts() -> None:
    postings = [
        Posting(REWARDS_POOL, "CITY", -5),
        Posting(ALICE, "CITY", 5),
        Posting(REWARDS_POOL, "CITY", -3),
        Posting(ALICE, "CITY", 3),
        Posting(TREASURY, "CITY", -1),
        Posting(BOB, "CITY", 1),
        Posting(BOB, "CITY", -1),
    ]
    assert net_changes(postings) == {(REWARDS_POOL, "CITY"): -8, (ALICE, "CITY"): 8, (TREASURY, "CITY"): -1}
    assert touched_accounts(postings) == sorted(
        [(REWARDS_POOL, "CITY"), (ALICE, "CITY"), (TREASURY, "CITY"), (BOB, "CITY")]
    )
