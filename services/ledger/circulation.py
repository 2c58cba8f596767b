"""CITY paid and how much of it circulated locally, per month: public aggregates of the chain, naming no wallet.

Per UTC month of settlement, from the sealed transactions (the leaves anyone can read, `/v1/leaves`):

- ``paid``: the CITY that rewards paid into wallets (and how many rewards);
- ``transferred``: the CITY that moved between wallets by signed transfers (and how many);
- ``to_local_merchants``: the part of it paid to a merchant wallet the directory lists (the ledger's
  ``merchants`` table, folded from the directory's attested ``city.merchants.v1`` facts). The ledger refuses
  CITY to a merchant that is not active and locally owned *at the time of the payment* (`payments.plan_transfer`:
  ``merchant-inactive``, ``city-outside-community``), so every CITY transfer to a merchant wallet is a payment
  to a locally owned, active merchant. The facts in force today are not asked again: a shop that closed, or was
  bought by a chain since, would otherwise take its past months' figures with it. What this cannot tell: a
  wallet paid as a person before it registered as a merchant counts as a merchant for those payments too;
- ``local_share``: ``to_local_merchants / transferred``, the share of the CITY spent that went to local
  merchants (None in a month with no transfer).

The month is the one of the transaction's ``settled_at`` (the ledger's clock when it settled; the record's
own ``timestamp`` is taken shortly before, when the ledger built the record, so only a transaction settled in
the last moments of a month could fall on the other side). Bucketing by the record's timestamp would mean
parsing every record's JSON in the query. Only sealed transactions count, read in one snapshot with the tree size they
make up, which the answer names: the figures are those of the first ``tree_size`` leaves.

The query scans the months asked for (no index on ``settled_at``), so a public endpoint must not run it per
request: `CirculationReads` computes the longest report (`MAX_REPORT_MONTHS`) once per `cache_s`, one query at
a time, and answers every shorter one from it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from services.common.events import rfc3339
from services.common.months import MAX_REPORT_MONTHS, last_months, month_start
from services.ledger.accounts import CITY
from services.ledger.payments import TRANSFER
from services.ledger.store import LedgerStore
from services.ledger.transactions import REWARD

_FLOWS = """
SELECT to_char(t.settled_at AT TIME ZONE 'UTC', 'YYYY-MM') AS month,
       t.type,
       m.wallet IS NOT NULL AS to_merchant,
       count(*) AS payments,
       sum(p.amount)::bigint AS amount
FROM transactions t
JOIN leaves l ON l.seq = t.seq
JOIN postings p ON p.seq = t.seq AND p.currency = $3 AND p.amount > 0
LEFT JOIN merchants m ON m.wallet = p.account AND t.type = $4
WHERE t.settled_at >= $1 AND t.type = ANY($2::text[])
GROUP BY 1, 2, 3
"""
# A reward posts its amount into one wallet (out of the rewards pool), a transfer into its recipient: the
# positive CITY postings are the payments, one per transaction.


@dataclass(frozen=True)
class MonthFlows:
    """What CITY did in one month (amounts in micro-CITY)."""

    month: str
    rewards: int = 0
    paid: int = 0
    transfers: int = 0
    transferred: int = 0
    merchant_payments: int = 0
    to_local_merchants: int = 0

    @property
    def local_share(self) -> float | None:
        """The share of the CITY transferred that local merchants received; None without transfers."""
        return self.to_local_merchants / self.transferred if self.transferred else None


@dataclass(frozen=True)
class CirculationReport:
    tree_size: int
    """The figures are those of the chain's first `tree_size` leaves."""
    computed_at: str
    months: list[MonthFlows]
    """Oldest first, every month of the period (zeros where nothing happened)."""

    def last(self, count: int) -> CirculationReport:
        """The same report over its last `count` months."""
        return CirculationReport(self.tree_size, self.computed_at, self.months[-count:])


class CirculationReads:
    """The circulation report, computed at most once per `cache_s`."""

    def __init__(
        self, store: LedgerStore, cache_s: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.cache_s = cache_s
        self._clock = clock
        self._lock = asyncio.Lock()
        self._cached: tuple[float, CirculationReport] | None = None

    async def report(self, months: int) -> CirculationReport:
        """The last `months` (1..`MAX_REPORT_MONTHS`) UTC months up to the current one."""
        if not 1 <= months <= MAX_REPORT_MONTHS:
            raise ValueError(f"months must be within 1..{MAX_REPORT_MONTHS}")
        async with self._lock:
            now = datetime.now(UTC)
            cached = self._cached
            fresh = (
                cached is not None
                and self._clock() - cached[0] < self.cache_s
                and cached[1].months[-1].month == last_months(now, 1)[0]
            )
            if not fresh:
                cached = self._cached = (self._clock(), await self._compute(now))
        assert cached is not None
        return cached[1].last(months)

    async def _compute(self, now: datetime) -> CirculationReport:
        keys = last_months(now, MAX_REPORT_MONTHS)
        async with (
            self.store.connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # One snapshot: the tree size named is exactly the leaves summed.
            tree_size = await conn.fetchval("SELECT tree_size FROM blocks ORDER BY height DESC LIMIT 1") or 0
            rows = await conn.fetch(_FLOWS, month_start(keys[0]), [REWARD, TRANSFER], CITY, TRANSFER)
        flows: dict[str, dict[str, int]] = {key: {} for key in keys}
        for row in rows:
            month = flows.get(row["month"])
            if month is None:  # settled in a month after `now`'s (a clock ahead): left for the next report
                continue
            if row["type"] == REWARD:
                _add(month, "rewards", "paid", row["payments"], row["amount"])
            else:
                _add(month, "transfers", "transferred", row["payments"], row["amount"])
                if row["to_merchant"]:
                    _add(month, "merchant_payments", "to_local_merchants", row["payments"], row["amount"])
        return CirculationReport(tree_size, rfc3339(now), [MonthFlows(key, **flows[key]) for key in keys])


def _add(month: dict[str, int], count_field: str, amount_field: str, count: int, amount: int) -> None:
    month[count_field] = month.get(count_field, 0) + count
    month[amount_field] = month.get(amount_field, 0) + amount
