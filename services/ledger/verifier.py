"""The chain verifier: checks a ledger with nothing but its HTTP API and the ledger's public key.

``smartcity verify --ledger URL --public-key did:key:...`` takes the latest signed checkpoint and walks every
block from height 0:

1. each header's signature by the expected key, and its link to the previous header (height,
   ``previous_hash``, growing tree);
2. without ``--replay``: the RFC 9162 consistency proof between successive tree sizes, and the inclusion
   of every transaction of a block (or only the ``--tx`` ones) in the latest checkpoint, from the record's
   own bytes;
3. with ``--replay``: every leaf, fetched in ranges (``/v1/leaves``, a thousand a request), hashed into the
   tree: each block's root is recomputed from the leaves themselves (which proves inclusion and consistency
   at once), and its transaction ids are the records' own. Each record is then replayed in leaf order
   (`Replay`): its authorisation (attestations and signatures, the signers' roles at that point of the
   chain), its money (postings exactly what the authorisation allows, the tx_id derived from it), a reward
   within the policy it names and its caps, AID only as its grant allows. Finally the balances the chain
   sums to are compared with the API's as of the same checkpoint, so it works on a live ledger: with an
   auditor's key (``--auditor-key``), account by account (``/v1/balances?tree_size=``, an auditor's signed
   read); without, each currency's totals (``/v1/totals?tree_size=``, public);
   A reward's record holds only what the public may see (`services.common.evidence`): the oracle's attestation,
   the roles, the policy, the rule and the most it pays, the caps by pseudonymous device, wallet and person.
   With an auditor's key (auditor mode) each reward's evidence is read too (``/v1/disclosures``, a signed
   read): it must open the reward's commitment, carry ingest's attestation, and the reward is recomputed
   from the disclosed reading and the policy, exactly (less only where a cap is full). An erased disclosure
   leaves the public checks. Likewise each transfer's or issuer command's memo the ledger keeps
   (``/v1/memos``) must open the ``memo_digest`` its signed object commits to (`services.common.memos`);
4. with ``--deep`` too (auditor mode): every device's signature on its reading, every owner's on its
   registration and every city device's on the receipt a reading carries (and that it binds that reading),
   which ingest checked and attested (the audit of ingest itself).

It stops at the first discrepancy and names it (block, transaction, leaf index).
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from services.common import merkle
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.common.workers import WorkerPool
from services.ledger import chain
from services.ledger.accounts import CURRENCIES
from services.ledger.replay import Disclosed, Discrepancy, Found, Frontier, Replay, authorise

LEAVES_PER_REQUEST = 1000
CHECK_CHUNK = 4000
"""Records whose signatures are checked together (shared among the worker processes)."""


@dataclass
class Report:
    """What a successful verification covered."""

    blocks: int = 0
    tree_size: int = 0
    transactions_checked: int = 0
    accounts_compared: int = 0
    totals_compared: int = 0
    balances: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))


async def _get(
    client: httpx.AsyncClient, path: str, auth: httpx.Auth | None = None, **params: Any
) -> httpx.Response:
    response = await client.get(path, params=params or None, auth=auth or httpx.USE_CLIENT_DEFAULT)
    if response.status_code != 200:
        raise Discrepancy(f"GET {path} answered {response.status_code}: {response.text[:200]}")
    return response


async def _headers(
    client: httpx.AsyncClient, latest: chain.BlockHeader, public_key: str
) -> AsyncIterator[tuple[chain.BlockHeader | None, chain.BlockHeader, list[str]]]:
    """Each block's verified header and transaction ids, from height 0 up to the latest checkpoint's."""
    previous: chain.BlockHeader | None = None
    for height in range(latest.height + 1):
        body = (await _get(client, f"/v1/blocks/{height}")).json()
        tx_ids = body.pop("tx_ids", [])
        try:
            header = chain.BlockHeader.from_json(body)
            chain.verify_header(header, public_key)
            chain.verify_link(previous, header)
        except chain.ChainError as exc:
            raise Discrepancy(f"block {height}: {exc}") from exc
        first_leaf = previous.tree_size if previous else 0
        if len(tx_ids) != header.tree_size - first_leaf:
            raise Discrepancy(f"block {height}: lists {len(tx_ids)} transactions for leaves {first_leaf}..")
        yield previous, header, tx_ids
        previous = header
    if previous != latest:
        raise Discrepancy(f"block {latest.height} is not the latest checkpoint")


async def _leaves(client: httpx.AsyncClient, start: int, end: int) -> AsyncIterator[bytes]:
    """The exact bytes of leaves start..end-1, fetched in ranges."""
    while start < end:
        body = (
            await _get(client, "/v1/leaves", start=start, end=min(end, start + LEAVES_PER_REQUEST))
        ).content
        lines = body.split(b"\n")[:-1] if body.endswith(b"\n") else body.split(b"\n")
        if not lines or not body:
            raise Discrepancy(f"/v1/leaves returned nothing from leaf {start}")
        for line in lines:
            yield line
        start += len(lines)


async def verify_ledger(
    client: httpx.AsyncClient,
    public_key: str,
    *,
    tx_ids: Iterable[str] | None = None,
    replay: bool = False,
    deep: bool = False,
    pool: WorkerPool | None = None,
    auditor: Keypair | None = None,
) -> Report:
    """Verify the ledger behind `client` (see the module docstring); raise `Discrepancy` on the first fault.

    With `pool`, a replay checks the records' signatures in its worker processes; with `auditor` (a key with
    the chain's auditor role), it compares the balances account by account, else each currency's totals."""
    try:
        latest = chain.BlockHeader.from_json((await _get(client, "/v1/checkpoint")).json())
        chain.verify_header(latest, public_key)
    except chain.ChainError as exc:
        raise Discrepancy(f"latest checkpoint: {exc}") from exc
    report = Report(tree_size=latest.tree_size)
    if replay:
        await _replay(client, latest, public_key, report, deep, pool, auditor)
    else:
        await _prove(client, latest, public_key, report, None if tx_ids is None else set(tx_ids))
    return report


async def _prove(
    client: httpx.AsyncClient,
    latest: chain.BlockHeader,
    public_key: str,
    report: Report,
    wanted: set[str] | None,
) -> None:
    """Consistency between successive checkpoints and inclusion of the `wanted` transactions (all: None)."""
    async for previous, header, tx_list in _headers(client, latest, public_key):
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
                    f"block {header.height}: not consistent with block {previous.height}: {exc}"
                ) from exc
        first_leaf = previous.tree_size if previous else 0
        for offset, tx_id in enumerate(tx_list):
            if wanted is not None and tx_id not in wanted:
                continue
            leaf_index = first_leaf + offset
            where = f"block {header.height}, transaction {tx_id} (leaf {leaf_index})"
            leaf = (await _get(client, f"/v1/transactions/{tx_id}")).content
            proof = (await _get(client, f"/v1/transactions/{tx_id}/proof", tree_size=latest.tree_size)).json()
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
        report.blocks += 1


async def _replay(
    client: httpx.AsyncClient,
    latest: chain.BlockHeader,
    public_key: str,
    report: Report,
    deep: bool,
    pool: WorkerPool | None,
    auditor: Keypair | None = None,
) -> None:
    """Every leaf into the tree and through the `Replay`, block by block; then the balances. The records'
    signatures are checked a chunk ahead, in `pool`'s processes when there is one."""
    frontier = Frontier()
    replayed = Replay()
    auth = None if auditor is None else SignedReadAuth(auditor)
    chunks = _authorised_chunks(client, latest.tree_size, deep, pool, auth)
    pending: list[tuple[bytes, Found]] = []
    async for _previous, header, tx_list in _headers(client, latest, public_key):
        for tx_id in tx_list:
            where = f"block {header.height}, transaction {tx_id} (leaf {frontier.size})"
            if not pending:
                try:
                    pending = list(reversed(await anext(chunks)))
                except StopAsyncIteration:
                    raise Discrepancy(f"{where}: /v1/leaves ends before it") from None
            leaf, found = pending.pop()
            frontier.append(merkle.leaf_hash(leaf))
            try:
                record = orjson.loads(leaf)
                if record.get("tx_id") != tx_id:
                    raise Discrepancy(f"the leaf is transaction {record.get('tx_id')}")
                replayed.apply(record, found)
            except (Discrepancy, ValueError, KeyError, TypeError) as exc:
                raise Discrepancy(f"{where}: {exc}") from exc
            for p in record.get("postings", []):
                report.balances[p["account"]][p["currency"]] += p["amount"]
            report.transactions_checked += 1
        if frontier.root() != header.root:
            raise Discrepancy(f"block {header.height}: its leaves do not hash to its signed root")
        report.blocks += 1
    replayed.check_cuts()
    if auth is None:
        await _compare_totals(client, report, latest.tree_size)
    else:
        await _compare_balances(client, report, latest.tree_size, auth)


async def _authorised_chunks(
    client: httpx.AsyncClient, tree_size: int, deep: bool, pool: WorkerPool | None, auth: httpx.Auth | None
) -> AsyncIterator[list[tuple[bytes, Found]]]:
    """Leaves in chunks with what `authorise` found in each (with an auditor's `auth`, given the rewards'
    disclosures), the next chunk fetched and checked while the caller folds this one."""

    async def check(start: int, leaves: list[bytes]) -> list[tuple[bytes, Found]]:
        disclosed = await _disclosures(client, start, start + len(leaves), auth) if auth else {}
        if auth:  # a leaf is a reward's (evidence) or a transfer's or command's (memo), never both
            disclosed |= await _disclosures(client, start, start + len(leaves), auth, "memos")
        items = [(leaf, disclosed.get(start + i)) for i, leaf in enumerate(leaves)]
        found = await pool.map(authorise, items, deep) if pool else authorise(items, deep)
        return list(zip(leaves, found, strict=True))

    leaves = _leaves(client, 0, tree_size)
    chunk: list[bytes] = []
    start = 0
    ahead: asyncio.Future[list[tuple[bytes, Found]]] | None = None
    async for leaf in leaves:
        chunk.append(leaf)
        if len(chunk) == CHECK_CHUNK:
            if ahead is not None:
                yield await ahead
            ahead, chunk, start = asyncio.ensure_future(check(start, chunk)), [], start + len(chunk)
    if ahead is not None:
        yield await ahead
    if chunk:
        yield await check(start, chunk)


async def _disclosures(
    client: httpx.AsyncClient, start: int, end: int, auth: httpx.Auth, what: str = "disclosures"
) -> dict[int, Disclosed]:
    """The disclosures of the rewards (or with `what` "memos", the memos) among leaves start..end-1, by leaf
    index (an auditor's signed read)."""
    found: dict[int, Disclosed] = {}
    while start < end:
        page = (await _get(client, f"/v1/{what}", auth, start=start, end=end)).json()
        for item in page[what]:
            found[item.pop("leaf_index")] = item
        if page["next_start"] is None:
            break
        start = page["next_start"]
    return found


async def _compare_totals(client: httpx.AsyncClient, report: Report, tree_size: int) -> None:
    """The API's public totals as of `tree_size`, currency by currency, against the replay's."""
    served = (await _get(client, "/v1/totals", tree_size=tree_size)).json()["totals"]
    for currency in CURRENCIES:
        held = [b[currency] for b in report.balances.values() if b.get(currency, 0) > 0]
        replayed = {"held": sum(held), "accounts": len(held)}
        if served.get(currency, {"held": 0, "accounts": 0}) != replayed:
            raise Discrepancy(
                f"{currency} totals: the API says {served.get(currency)} at tree size {tree_size}, the sealed "
                f"chain sums to {replayed}"
            )
        report.totals_compared += 1


async def _compare_balances(
    client: httpx.AsyncClient, report: Report, tree_size: int, auth: httpx.Auth
) -> None:
    """The API's balances as of `tree_size`, account by account, against the replay's."""
    served: dict[str, dict[str, int]] = {}
    after = ""
    while True:
        page = (await _get(client, "/v1/balances", auth, tree_size=tree_size, after=after)).json()
        for item in page["accounts"]:
            served[item["account"]] = item["balances"]
        if page["next_after"] is None:
            break
        after = page["next_after"]
    for account in sorted(set(served) | set(report.balances)):
        replayed = report.balances.get(account, {})
        for currency in CURRENCIES:
            if served.get(account, {}).get(currency, 0) != replayed.get(currency, 0):
                raise Discrepancy(
                    f"account {account}: the API says {served.get(account, {}).get(currency, 0)} micro-"
                    f"{currency} at tree size {tree_size}, the sealed chain sums to {replayed.get(currency, 0)}"
                )
        report.accounts_compared += 1


def run(
    ledger: str,
    public_key: str,
    tx_ids: list[str] | None,
    replay: bool,
    deep: bool = False,
    auditor: Keypair | None = None,
) -> int:
    """The ``smartcity verify`` command: print what was checked, or the first discrepancy; the exit status."""
    if deep and auditor is None:
        print(
            "FAIL: --deep checks the signatures inside rewards' evidence, which only an auditor reads: give --auditor-key"
        )
        return 2

    async def main() -> Report:
        pool = WorkerPool(os.cpu_count() or 1, runs=[authorise]) if replay or deep else None
        try:
            async with httpx.AsyncClient(base_url=ledger, timeout=30) as client:
                return await verify_ledger(
                    client,
                    public_key,
                    tx_ids=tx_ids,
                    replay=replay or deep,
                    deep=deep,
                    pool=pool,
                    auditor=auditor,
                )
        finally:
            if pool is not None:
                pool.shutdown()

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
        + (
            f"{report.transactions_checked} records replayed, "
            + (
                f"{report.accounts_compared} accounts matching"
                if auditor
                else f"the totals of {report.totals_compared} currencies matching"
            )
            if replay or deep
            else f"{report.transactions_checked} inclusion proofs verified"
        )
        + (", every device signature checked" if deep else "")
    )
    return 0
