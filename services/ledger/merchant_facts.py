"""Which ``city.merchants.v1`` records the ledger takes its merchant facts from. The rules, as pure functions.

The ledger enforces merchants' facts on payments (AID only to verified merchants of allowed categories, CITY
only to locally owned ones, an inactive merchant paid nothing), so a record counts only if it is attested
by a key holding the merchant-verifier role (the directory's) and its time is a real one, not ahead of the
clock: a record dated in the future would otherwise outrank every later, true one in the fold.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from services.common.roles import Role
from services.ledger.authority import Authority
from services.ledger.payments import parse_time
from services.ledger.transactions import RejectedError

MAX_AHEAD = timedelta(minutes=5)
"""How far a record's ``updated_at`` may be ahead of the ledger's clock (the producers' clock skew)."""


def check_fact(value: Mapping[str, Any], signer: str, authority: Authority, now: datetime) -> datetime:
    """The ``updated_at`` of a (schema-valid) merchants record attested by `signer`, if the ledger may fold
    it; raises `RejectedError` naming why not."""
    if not authority.holds(signer, Role.MERCHANT_VERIFIER):
        raise RejectedError("role-not-held", f"{signer} does not hold the {Role.MERCHANT_VERIFIER} role")
    try:
        updated_at = parse_time(value["updated_at"])
    except ValueError as exc:
        raise RejectedError("impossible-date", f"updated_at {value['updated_at']!r}: {exc}") from exc
    if updated_at > now + MAX_AHEAD:
        raise RejectedError(
            "future-dated", f"updated_at {value['updated_at']} is ahead of the ledger's clock"
        )
    if value["registration"].get("wallet") != value["wallet"]:
        raise RejectedError("wallet-mismatch", "the registration is for another wallet than the record's")
    return updated_at
