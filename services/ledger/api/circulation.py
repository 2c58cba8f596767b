"""Ledger HTTP route of the public circulation report: CITY paid and how much of it circulated locally, per
month (`services.ledger.circulation`). Aggregates of public records only: no wallet is named."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from services.common.months import MAX_REPORT_MONTHS
from services.common.openapi import examples
from services.ledger.circulation import CirculationReads, CirculationReport

router = APIRouter(prefix="/v1", tags=["circulation"])


class CirculationMonth(BaseModel):
    month: str = Field(description="The UTC month of settlement, YYYY-MM.")
    rewards: int = Field(description="Rewards settled.")
    paid: int = Field(description="micro-CITY the rewards paid into wallets.")
    transfers: int = Field(description="CITY transfers settled.")
    transferred: int = Field(description="micro-CITY moved between wallets by transfers.")
    merchant_payments: int = Field(description="CITY transfers to merchants the directory lists.")
    to_local_merchants: int = Field(
        description="micro-CITY of those: the ledger takes CITY only to locally owned, active merchants."
    )
    local_share: float | None = Field(
        description="to_local_merchants / transferred: the share of the CITY spent that local merchants "
        "received (null: no transfer that month)."
    )


class Circulation(BaseModel):
    model_config = examples(
        {
            "currency": "CITY",
            "unit": "micro-CITY",
            "tree_size": 4213,
            "computed_at": "2026-03-14T09:26:53Z",
            "months": [
                {
                    "month": "2026-03",
                    "rewards": 3120,
                    "paid": 1_560_000,
                    "transfers": 412,
                    "transferred": 980_000,
                    "merchant_payments": 230,
                    "to_local_merchants": 610_000,
                    "local_share": 0.6224,
                }
            ],
        }
    )
    currency: Literal["CITY"] = "CITY"
    unit: Literal["micro-CITY"] = "micro-CITY"
    tree_size: int = Field(description="The figures sum the chain's first tree_size leaves (sealed only).")
    computed_at: str = Field(description="When they were summed (answers are kept for a few seconds).")
    months: list[CirculationMonth] = Field(description="Oldest first, the current month last.")


def _answer(report: CirculationReport) -> Circulation:
    return Circulation(
        tree_size=report.tree_size,
        computed_at=report.computed_at,
        months=[
            CirculationMonth(
                month=m.month,
                rewards=m.rewards,
                paid=m.paid,
                transfers=m.transfers,
                transferred=m.transferred,
                merchant_payments=m.merchant_payments,
                to_local_merchants=m.to_local_merchants,
                local_share=m.local_share,
            )
            for m in report.months
        ],
    )


@router.get(
    "/circulation",
    summary="Per month, the CITY rewards paid, the CITY transferred and the part of it spent at local merchants "
    "(public: aggregates of the sealed chain, no wallet named)",
)
async def circulation(
    request: Request,
    months: int = Query(
        12, ge=1, le=MAX_REPORT_MONTHS, description="How many months, up to the current one."
    ),
) -> Circulation:
    reads: CirculationReads = request.app.state.circulation
    return _answer(await reads.report(months))
