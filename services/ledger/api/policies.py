"""Ledger HTTP routes of reward policies: publish one to the chain, and read one by its hash."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from services.common.events import now_rfc3339 as _now
from services.common.http import Problem
from services.common.openapi import REF, answers, problems
from services.ledger.api import models
from services.ledger.api.routes import (
    BAD_SIGNATURE,
    answered,
    get_store,
    rejection,
    signed_body,
    signed_object_body,
)
from services.ledger.policies import policy_transaction
from services.ledger.store import LedgerStore, NotFoundError
from services.ledger.transactions import RejectedError

router = APIRouter(prefix="/v1", tags=["policies"])

PUBLICATION_SCHEMA = "policy-publications.v1.json"
_HASH = re.compile(r"^[0-9a-f]{64}$")


@router.post(
    "/policies",
    status_code=201,
    summary="Publish a reward policy to the chain: signed by a key holding the policy-publisher role (200 with "
    "the original receipt when the document is on the chain already)",
    response_model=models.PolicyReceipt,
    responses={
        **answers(models.PolicyReceipt, description="The document is on the chain already: its receipt"),
        **problems(
            BAD_SIGNATURE,
            (403, "The publisher does not hold the policy-publisher role"),
            (409, "A conflict with the chain's policies"),
        ),
    },
    openapi_extra=signed_object_body(PUBLICATION_SCHEMA, "publisher", models.EXAMPLE_REQUESTS["policy"]),
)
async def publish_policy(request: Request, response: Response) -> dict[str, Any]:
    body = await signed_body(request, PUBLICATION_SCHEMA)
    try:
        tx, policy = policy_transaction(body, _now())
        receipt = await get_store(request).submit_policy(tx, policy)
    except RejectedError as exc:
        raise rejection(exc) from exc
    return {**answered(response, receipt), "policy_hash": policy.hash, "version": policy.version}


@router.get(
    "/policies/{policy_hash}",
    summary="A reward policy on the chain, by its hash (the document)",
    responses={
        **answers({"$ref": REF + "policy.v1"}, models.POLICY.document, description="The policy document"),
        **problems((400, "Not a policy hash"), (404, "No policy of that hash on the chain")),
    },
)
async def policy(policy_hash: str, store: LedgerStore = Depends(get_store)) -> dict[str, Any]:
    if not _HASH.match(policy_hash):
        raise Problem(400, "invalid-policy-hash", f"{policy_hash!r} is not 64 lowercase hex digits")
    try:
        return await store.policy_document(policy_hash)
    except NotFoundError as exc:
        raise Problem(404, "not-found", str(exc)) from exc
