"""Ledger HTTP routes for rewards' evidence, off the chain: a reward's disclosure for the wallet it paid or an
auditor, and disclosures in leaf ranges for an auditor's replay (`smartcity verify --auditor-key`); and a
transfer's or issuer command's memo for its parties or an auditor (`services.ledger.memos`). All are signed reads
(`services.common.signed_reads`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from services.common.http import MAX_INT_PARAM, Problem
from services.common.openapi import problems
from services.common.signed_reads import authorise, signed_reader
from services.ledger.api import models
from services.ledger.api.routes import auditors, get_store
from services.ledger.disclosures import DisclosureReads
from services.ledger.memos import MemoReads
from services.ledger.store import NotFoundError, OutOfRangeError

router = APIRouter(prefix="/v1", tags=["audit"])


def get_disclosures(request: Request) -> DisclosureReads:
    return DisclosureReads(get_store(request))


@router.get(
    "/transactions/{tx_id}/disclosure",
    summary="A reward's evidence, which its public record commits to: the salt, the readings envelope ingest "
    "attested and ingest's attestation (a signed read by the wallet it paid, or an auditor)",
    response_model=models.Disclosure,
    response_model_exclude_unset=True,
    responses=problems(
        (403, "The reader is not the wallet paid or an auditor"), (404, "No reward of that id with evidence")
    ),
)
async def transaction_disclosure(
    tx_id: str,
    request: Request,
    disclosures: DisclosureReads = Depends(get_disclosures),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    try:
        wallet, disclosure = await disclosures.of_transaction(tx_id)
    except NotFoundError as exc:
        raise Problem(404, "not-found", str(exc)) from exc
    authorise(reader, wallet, await auditors(get_store(request)), what="reward evidence")
    return disclosure


@router.get(
    "/transactions/{tx_id}/memo",
    summary="A transfer's or issuer command's memo, which its public record holds only as memo_digest: the "
    "disclosure opening the digest and its text (a signed read by a party to it, or an auditor); erased_at "
    "once a party's data was erased",
    response_model=models.Memo,
    response_model_exclude_unset=True,
    responses=problems(
        (403, "The reader is not a party or an auditor"), (404, "No memo of that transaction")
    ),
)
async def transaction_memo(
    tx_id: str, request: Request, reader: str = Depends(signed_reader)
) -> dict[str, Any]:
    try:
        parties, memo = await MemoReads(get_store(request)).of_transaction(tx_id)
    except NotFoundError as exc:
        raise Problem(404, "not-found", str(exc)) from exc
    if reader not in parties and reader not in await auditors(get_store(request)):
        raise Problem(
            403, "read-forbidden", f"{reader} is not a party to transaction {tx_id}: its memo is personal."
        )
    return memo


@router.get(
    "/disclosures",
    summary="The evidence of the rewards among leaves start <= i < end, in leaf order, each with its "
    "leaf_index (an auditor's signed read); next_start says where to ask again",
    response_model=models.Disclosures,
    response_model_exclude_unset=True,
    responses=problems((400, "A range out of the tree"), (403, "The reader does not hold the auditor role")),
)
async def disclosures_in_range(
    request: Request,
    start: int = Query(..., ge=0, le=MAX_INT_PARAM),
    end: int = Query(..., ge=1, le=MAX_INT_PARAM),
    disclosures: DisclosureReads = Depends(get_disclosures),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    if reader not in await auditors(get_store(request)):
        raise Problem(
            403, "read-forbidden", f"{reader} does not hold the auditor role: evidence is personal."
        )
    try:
        found, next_start = await disclosures.of_leaves(start, end)
    except OutOfRangeError as exc:
        raise Problem(400, "out-of-range", str(exc)) from exc
    return {"disclosures": found, "next_start": next_start}


@router.get(
    "/memos",
    summary="The memos of the transactions among leaves start <= i < end, in leaf order, each with its "
    "leaf_index (an auditor's signed read, for `smartcity verify --auditor-key`); next_start says where to ask "
    "again",
    response_model=models.Memos,
    response_model_exclude_unset=True,
    responses=problems((400, "A range out of the tree"), (403, "The reader does not hold the auditor role")),
)
async def memos_in_range(
    request: Request,
    start: int = Query(..., ge=0, le=MAX_INT_PARAM),
    end: int = Query(..., ge=1, le=MAX_INT_PARAM),
    reader: str = Depends(signed_reader),
) -> dict[str, Any]:
    if reader not in await auditors(get_store(request)):
        raise Problem(403, "read-forbidden", f"{reader} does not hold the auditor role: memos are personal.")
    try:
        found, next_start = await MemoReads(get_store(request)).of_leaves(start, end)
    except OutOfRangeError as exc:
        raise Problem(400, "out-of-range", str(exc)) from exc
    return {"memos": found, "next_start": next_start}
