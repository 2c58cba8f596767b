"""The chain verifier: checks a ledger with nothing but its HTTP API and the ledger's public key.

``smartcity verify --ledger URL --public-key did:key:...`` walks every block from height 0:

1. each header's signature by the expected key, and its link to the previous header (height,
   ``previous_hash``, growing tree);
2. the RFC 9162 consistency proof between each pair of successive tree sizes;
3. the inclusion of every transaction of the block (or only the ``--tx`` ones) in the latest checkpoint:
   the record's bytes, hashed as a leaf, must prove into the latest root at the index the block says;
4. with ``--replay``: each record's own authorisation (the signatures it carries) and its postings
   balance; that AID moves only as its signed grant allows (`aid_audit`); then the balances it sums to for
   every account, compared with ``/v1/accounts/{account}``.

It stops at the first discrepancy and names it (block, transaction, leaf index).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.common import merkle, signing
from services.common.roles import Role
from services.ledger import chain, payments
from services.ledger.accounts import CURRENCIES, Posting, PostingError, check_postings
from services.ledger.aid_audit import AidAudit
from services.ledger.authority import Authority
from services.ledger.transactions import REWARD, RejectedError, verify_reward


class Discrepancy(Exception):
    """What the verifier found wrong, and where."""


@dataclass
class Report:
    """What a successful verification covered."""

    blocks: int = 0
    tree_size: int = 0
    transactions_checked: int = 0
    accounts_compared: int = 0
    balances: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))


async def _get(client: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    response = await client.get(path, params=params or None)
    if response.status_code != 200:
        raise Discrepancy(f"GET {path} answered {response.status_code}: {response.text[:200]}")
    return response


def check_authorisation(record: dict[str, Any], held: Authority) -> Authority:
    """Re-verify the authorisation a record carries, that its signers held their roles in `held` (the
    authority as of the records before it), and that its postings balance; return the authority after it.
    Raises `Discrepancy`."""
    postings = [Posting(p["account"], p["currency"], p["amount"]) for p in record.get("postings", [])]
    try:
        if postings:
            check_postings(postings)
        kind = record.get("type")
        required: list[tuple[str, str]] = []
        if kind == REWARD:
            oracle, ingest = verify_reward(record["reward"], record["attestation"])
            required = [(oracle, Role.REWARDS_ORACLE), (ingest, Role.INGEST_ATTESTOR)]
        elif kind == payments.TRANSFER:
            signing.verify(record["transfer"], "from")
        elif kind == payments.ISSUER:
            signing.verify(record["command"], "issuer")
            required = [(record["command"]["issuer"], Role.ISSUER)]
        for key, role in required:
            if not held.holds(key, role):
                raise Discrepancy(f"{key} did not hold the {role} role when it was sealed")
        return held.apply(record)
    except (PostingError, RejectedError, signing.SignatureError, KeyError, TypeError) as exc:
        raise Discrepancy(f"its authorisation does not verify: {exc}") from exc


async def verify_ledger(
    client: httpx.AsyncClient,
    public_key: str,
    *,
    tx_ids: Iterable[str] | None = None,
    replay: bool = False,
) -> Report:
    """Verify the ledger behind `client` (see the module docstring); raise `Discrepancy` on the first fault."""
    wanted = None if tx_ids is None else set(tx_ids)
    try:
        latest = chain.BlockHeader.from_json((await _get(client, "/v1/checkpoint")).json())
        chain.verify_header(latest, public_key)
    except chain.ChainError as exc:
        raise Discrepancy(f"latest checkpoint: {exc}") from exc
    report = Report(tree_size=latest.tree_size)
    aid = AidAudit()
    held = Authority()
    previous: chain.BlockHeader | None = None
    for height in range(latest.height + 1):
        body = (await _get(client, f"/v1/blocks/{height}")).json()
        tx_list = body.pop("tx_ids", [])
        try:
            header = chain.BlockHeader.from_json(body)
            chain.verify_header(header, public_key)
            chain.verify_link(previous, header)
        except chain.ChainError as exc:
            raise Discrepancy(f"block {height}: {exc}") from exc
        first_leaf = previous.tree_size if previous else 0
        if len(tx_list) != header.tree_size - first_leaf:
            raise Discrepancy(f"block {height}: lists {len(tx_list)} transactions for leaves {first_leaf}..")
        if previous is not None and 0 < previous.tree_size < header.tree_size:
            proof = (
                await _get(client, "/v1/consistency", first=previous.tree_size, second=header.tree_size)
            ).json()
            try:
                merkle.verify_consistency(
                    previous.tree_size,
                    header.tree_size,
                    previous.root,
                    header.root,
                    [bytes.fromhex(h) for h in proof["proof"]],
                )
            except (merkle.ProofError, ValueError) as exc:
                raise Discrepancy(
                    f"block {height}: not consistent with block {previous.height}: {exc}"
                ) from exc
        for offset, tx_id in enumerate(tx_list):
            leaf_index = first_leaf + offset
            if not replay and wanted is not None and tx_id not in wanted:
                continue
            where = f"block {height}, transaction {tx_id} (leaf {leaf_index})"
            leaf = (await _get(client, f"/v1/transactions/{tx_id}")).content
            if wanted is None or tx_id in wanted:
                proof = (
                    await _get(client, f"/v1/transactions/{tx_id}/proof", tree_size=latest.tree_size)
                ).json()
                if proof["leaf_index"] != leaf_index:
                    raise Discrepancy(f"{where}: the proof puts it at leaf {proof['leaf_index']}")
                path = [bytes.fromhex(h) for h in proof["audit_path"]]
                try:
                    merkle.verify_inclusion(
                        merkle.leaf_hash(leaf), leaf_index, latest.tree_size, path, latest.root
                    )
                except (merkle.ProofError, ValueError) as exc:
                    raise Discrepancy(
                        f"{where}: its record is not the leaf the signed tree holds ({exc})"
                    ) from exc
                report.transactions_checked += 1
            if replay:
                try:
                    record = json.loads(leaf)
                    if record.get("tx_id") != tx_id:
                        raise Discrepancy(f"the record names tx_id {record.get('tx_id')}")
                    held = check_authorisation(record, held)
                    aid.apply(record)
                except (Discrepancy, ValueError, KeyError, TypeError) as exc:
                    raise Discrepancy(f"{where}: {exc}") from exc
                for p in record.get("postings", []):
                    report.balances[p["account"]][p["currency"]] += p["amount"]
        previous = header
        report.blocks += 1
    if replay:
        await _compare_balances(client, report)
    return report


async def _compare_balances(client: httpx.AsyncClient, report: Report) -> None:
    for account, replayed in sorted(report.balances.items()):
        served = (await _get(client, f"/v1/accounts/{account}")).json()["balances"]
        for currency in CURRENCIES:
            if served.get(currency, 0) != replayed.get(currency, 0):
                raise Discrepancy(
                    f"account {account}: the API says {served.get(currency, 0)} micro-{currency}, "
                    f"the sealed chain sums to {replayed.get(currency, 0)}"
                )
        report.accounts_compared += 1


def run(ledger: str, public_key: str, tx_ids: list[str] | None, replay: bool) -> int:
    """The ``smartcity verify`` command: print what was checked, or the first discrepancy; the exit status."""

    async def main() -> Report:
        async with httpx.AsyncClient(base_url=ledger, timeout=30) as client:
            return await verify_ledger(client, public_key, tx_ids=tx_ids, replay=replay)

    try:
        report = asyncio.run(main())
    except Discrepancy as exc:
        print(f"FAIL: {exc}")
        return 1
    except httpx.HTTPError as exc:
        print(f"FAIL: cannot reach the ledger at {ledger}: {exc}")
        return 2
    print(
        f"OK: {report.blocks} blocks signed by {public_key} and consistent, tree size {report.tree_size}, "
        f"{report.transactions_checked} inclusion proofs verified"
        + (f", {report.accounts_compared} accounts replayed and matching" if replay else "")
    )
    return 0
