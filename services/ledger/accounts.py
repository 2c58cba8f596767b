"""Accounts, postings and the double-entry rules (pure).

An account is either a wallet, named by its did:key, or a system account of the city (``city:...``).
Issuer accounts create money by going negative; every other account must stay at zero or above.
A posting moves a signed amount of micro-units of one currency in or out of one account; the postings
of a transaction sum to zero per currency.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from services.common import didkey

Currency = Literal["CITY", "AID", "CREDIT"]
CURRENCIES: tuple[str, ...] = get_args(Currency)
"""Every currency the chain knows; balances are reported for each (zero when never touched)."""
CITY: Currency = "CITY"
AID: Currency = "AID"
CREDIT: Currency = "CREDIT"

TREASURY = "city:treasury"
"""The city's issuer account: the source of every CITY in circulation, so it may go negative."""
REWARDS_POOL = "city:rewards-pool"
"""Funded by the treasury at genesis; every reward is paid out of it."""

AID_POOL = "city:aid-pool"
"""Funded by the treasury (an issuer command); AID grants are paid out of it and unspent AID returns to it."""
POOLS: dict[str, str] = {"rewards": REWARDS_POOL, "aid": AID_POOL}

ISSUERS: frozenset[str] = frozenset({TREASURY})
SYSTEM_ACCOUNTS: frozenset[str] = frozenset({TREASURY, REWARDS_POOL, AID_POOL})
WALLET_PREFIX = didkey.DID_KEY_PREFIX

BalanceKey = tuple[str, str]
"""(account, currency)."""


class AccountError(ValueError):
    """The string names no account: neither an Ed25519 did:key nor a known system account."""


class PostingError(ValueError):
    """Postings that cannot form a transaction (unbalanced, unknown currency, zero amount, ...)."""


class InsufficientFundsError(ValueError):
    """Applying a transaction would take a non-issuer account below zero."""

    def __init__(self, account: str, currency: str, balance: int, amount: int) -> None:
        self.account = account
        self.currency = currency
        self.balance = balance
        self.amount = amount
        super().__init__(f"{account} holds {balance} micro-{currency}; the transaction moves {amount}")


def is_issuer(account: str) -> bool:
    """True if `account` may go negative (it issues its currency)."""
    return account in ISSUERS


def is_wallet(account: str) -> bool:
    """True if `account` is a citizen's or merchant's wallet (a did:key), not a system account."""
    return account.startswith(WALLET_PREFIX)


def check_account(account: object) -> str:
    """Return `account` if it names an account (a well-formed Ed25519 did:key or a system account)."""
    if isinstance(account, str) and account in SYSTEM_ACCOUNTS:
        return account
    try:
        didkey.decode(account)  # memoised there: the same wallets recur in every batch
    except didkey.DidKeyError as exc:
        raise AccountError(f"{account!r} is not an Ed25519 did:key nor a system account: {exc}") from exc
    return account  # type: ignore[return-value]


@dataclass(frozen=True)
class Posting:
    """A signed amount (micro-units) of `currency` into (positive) or out of (negative) `account`."""

    account: str
    currency: str
    amount: int

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "currency": self.currency, "amount": self.amount}


def check_postings(postings: Iterable[Posting]) -> None:
    """Raise `PostingError` unless the postings are well formed and sum to zero per currency.

    Each (account, currency) may appear once, so a transaction's effect on an account is one number.
    """
    totals: dict[str, int] = defaultdict(int)
    seen: set[BalanceKey] = set()
    count = 0
    for p in postings:
        count += 1
        if p.currency not in CURRENCIES:
            raise PostingError(f"unknown currency {p.currency!r}")
        if type(p.amount) is not int or p.amount == 0:
            raise PostingError(f"posting amount must be a non-zero integer, got {p.amount!r}")
        try:
            check_account(p.account)
        except AccountError as exc:
            raise PostingError(str(exc)) from exc
        if (p.account, p.currency) in seen:
            raise PostingError(f"{p.account} appears twice in {p.currency}")
        seen.add((p.account, p.currency))
        totals[p.currency] += p.amount
    if count < 2:
        raise PostingError("a transaction moves money between at least two accounts")
    unbalanced = {currency: total for currency, total in totals.items() if total}
    if unbalanced:
        raise PostingError(f"postings do not balance: {unbalanced}")


def net_changes(postings: Iterable[Posting]) -> dict[BalanceKey, int]:
    """The net change of each (account, currency) over many postings; zero changes are left out."""
    changes: dict[BalanceKey, int] = defaultdict(int)
    for p in postings:
        changes[(p.account, p.currency)] += p.amount
    return {key: amount for key, amount in changes.items() if amount}


class Funds:
    """Running balances of the accounts a batch debits, to decide which transactions of it can settle.

    Start it from the balances read (under lock) for the debited non-issuer accounts; `apply` each
    transaction's postings in order. A rejected transaction leaves the balances untouched.
    """

    def __init__(self, balances: Mapping[BalanceKey, int]) -> None:
        self._balances = dict(balances)

    def apply(self, postings: Iterable[Posting]) -> None:
        """Apply postings, or raise `InsufficientFundsError` (and change nothing)."""
        postings = list(postings)
        for p in postings:
            if p.amount < 0 and not is_issuer(p.account):
                balance = self._balances.get((p.account, p.currency), 0)
                if balance + p.amount < 0:
                    raise InsufficientFundsError(p.account, p.currency, balance, -p.amount)
        for p in postings:
            key = (p.account, p.currency)
            self._balances[key] = self._balances.get(key, 0) + p.amount

    def balance(self, account: str, currency: str) -> int:
        return self._balances.get((account, currency), 0)


def touched_accounts(postings: Iterable[Posting]) -> list[BalanceKey]:
    """The (account, currency) pairs the postings touch, sorted: the one order every settler locks them in."""
    return sorted({(p.account, p.currency) for p in postings})
