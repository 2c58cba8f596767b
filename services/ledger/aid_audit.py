"""The AID audit of a replayed chain (pure): every grant's AID moves only as its signed grant allows.

Fed the chain's records in leaf order, it follows each grant from its signed ``grant`` command: transfers
draw from it (``aid_draws``) only before it expires, from its own wallet and never beyond what is left; a
``revoke`` returns exactly what is left; an ``aid-expiry`` returns exactly what is left, only once the grant
has expired, and names the grant's own expiry. AID holder keys stay apart from wallets
(`services.common.aid_holder`): no grant pays an account that held another currency, and no other currency
moves to or from an account that holds grants. The ledger enforces all of this when it settles; the audit
lets anyone check that it did, from the chain alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.ledger.accounts import AID
from services.ledger.payments import AID_EXPIRY, ISSUER, TRANSFER, parse_time


class AidDiscrepancy(ValueError):
    """A record that moves AID other than its grant allows."""


@dataclass
class _OpenGrant:
    wallet: str
    remaining: int
    expires_at: datetime


class AidAudit:
    """Grants opened so far and what is left of each; `apply` each record in leaf order."""

    def __init__(self) -> None:
        self._open: dict[str, _OpenGrant] = {}
        self._holders: set[str] = set()
        """Every account granted AID so far."""
        self._wallets: set[str] = set()
        """Every account that held another currency so far."""

    def wallet_of(self, grant_id: str) -> str:
        """The wallet of an open grant; raises `AidDiscrepancy` if there is none."""
        return self._grant(grant_id).wallet

    def apply(self, record: Mapping[str, Any]) -> None:
        """Check one (authorisation-verified) record against the grants before it; raise `AidDiscrepancy`."""
        kind = record.get("type")
        self._keep_holders_apart(record)
        if kind == ISSUER:
            command = record["command"]
            if command["command"] == "grant":
                self._holders.add(command["holder"])
                self._open[record["tx_id"]] = _OpenGrant(
                    command["holder"], command["amount"], parse_time(command["expires_at"])
                )
            elif command["command"] == "revoke":
                self._close(command["grant_id"], _returned(record), "revoke")
        elif kind == TRANSFER and record["transfer"]["currency"] == AID:
            self._draw(record)
        elif kind == AID_EXPIRY:
            grant = self._grant(record["grant_id"])
            if parse_time(record["expired_at"]) != grant.expires_at:
                raise AidDiscrepancy(f"names expiry {record['expired_at']}, not its grant's")
            if parse_time(record["timestamp"]) < grant.expires_at:
                raise AidDiscrepancy(f"returns grant {record['grant_id']} before it expires")
            self._close(record["grant_id"], _returned(record), "expiry")

    def _keep_holders_apart(self, record: Mapping[str, Any]) -> None:
        command = record.get("command") if record.get("type") == ISSUER else None
        if command is not None and command["command"] == "grant" and command["holder"] in self._wallets:
            raise AidDiscrepancy(f"grants AID to {command['holder']}, which held another currency")
        for posting in record.get("postings", []):
            if posting["currency"] == AID:
                continue
            if posting["account"] in self._holders:
                raise AidDiscrepancy(
                    f"moves {posting['currency']} to or from {posting['account']}, a grant holder"
                )
            self._wallets.add(posting["account"])

    def _draw(self, record: Mapping[str, Any]) -> None:
        transfer = record["transfer"]
        draws = record.get("aid_draws", [])
        if sum(d["amount"] for d in draws) != transfer["amount"]:
            raise AidDiscrepancy("its AID is not drawn from grants in full")
        at = parse_time(record["timestamp"])
        for draw in draws:
            grant = self._grant(draw["grant_id"])
            if grant.wallet != transfer["from"]:
                raise AidDiscrepancy(f"draws on grant {draw['grant_id']} of another wallet")
            if at >= grant.expires_at:
                raise AidDiscrepancy(f"spends grant {draw['grant_id']} after it expired")
            if draw["amount"] > grant.remaining:
                raise AidDiscrepancy(
                    f"draws {draw['amount']} on grant {draw['grant_id']}, which holds {grant.remaining}"
                )
            grant.remaining -= draw["amount"]

    def _grant(self, grant_id: str) -> _OpenGrant:
        grant = self._open.get(grant_id)
        if grant is None:
            raise AidDiscrepancy(f"grant {grant_id} is not open (never granted, or closed already)")
        return grant

    def _close(self, grant_id: str, returned: int, how: str) -> None:
        grant = self._grant(grant_id)
        if returned != grant.remaining:
            raise AidDiscrepancy(
                f"{how} of grant {grant_id} returns {returned}, not the {grant.remaining} left"
            )
        del self._open[grant_id]


def _returned(record: Mapping[str, Any]) -> int:
    """The AID a revoke or expiry moves back (its positive posting)."""
    return sum(p["amount"] for p in record["postings"] if p["currency"] == AID and p["amount"] > 0)
