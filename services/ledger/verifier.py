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

from services.common import memos, merkle, receipts, signing
from services.common.policy import Policy, PolicyError, parse_policy
from services.common.roles import Role
from services.common.signed_reads import SignedReadAuth
from services.common.signing import Keypair
from services.common.workers import WorkerPool
from services.ledger import chain, payments
from services.ledger.accounts import CURRENCIES, Posting, PostingError, check_postings
from services.ledger.aid_audit import AidAudit
from services.ledger.anchors import ANCHOR, check_anchor
from services.ledger.authority import Authority
from services.ledger.money import check_money
from services.ledger.policies import POLICY, Caps, RewardClaim, claim_of, parse_published
from services.ledger.rewards import verify_disclosure, verify_public
from services.ledger.transactions import REWARD, RejectedError

LEAVES_PER_REQUEST = 1000
CHECK_CHUNK = 4000
"""Records whose signatures are checked together (shared among the worker processes)."""


class Discrepancy(Exception):
    """What the verifier found wrong, and where."""


@dataclass
class Report:
    """What a successful verification covered."""

    blocks: int = 0
    tree_size: int = 0
    transactions_checked: int = 0
    accounts_compared: int = 0
    totals_compared: int = 0
    balances: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))


@dataclass(frozen=True)
class Found:
    """What `authorise` found in a record: the (key, role) pairs its signatures rest on and, for a reward
    whose evidence an auditor saw, its reading's values; or why it fails (`error`)."""

    signers: list[tuple[str, str]] = field(default_factory=list)
    values: dict[str, float] | None = None
    error: str | None = None


Disclosed = dict[str, Any] | None
"""A reward's disclosure as the ledger serves it to auditors (``salt``, ``envelope``, ``attestation``, or
``erased_at`` once erased); None: not asked for (public mode) or not a reward."""


def authorise(items: list[tuple[bytes, Disclosed]], deep: bool) -> list[Found]:
    """The signature and attestation checks of each record (with its disclosure, in auditor mode), which
    depend on nothing before it (pure, so a pool of processes runs them side by side); roles, money, caps and
    grants are `Replay`'s, in order."""
    found: list[Found] = []
    for leaf, disclosure in items:
        try:
            found.append(_signers(orjson.loads(leaf), disclosure, deep))
        except (RejectedError, signing.SignatureError, ValueError, KeyError, TypeError) as exc:
            found.append(Found(error=f"its authorisation does not verify: {exc}"))
    return found


def _check_memo(signed: dict[str, Any], disclosure: Disclosed) -> None:
    """In auditor mode, the memo the ledger keeps for a signed transfer or command (unless erased) opens the
    ``memo_digest`` it signed; raises `memos.MemoError` (a ValueError) or `RejectedError`."""
    if disclosure is None or disclosure.get("erased_at") is not None:
        return
    if memos.DIGEST_FIELD not in signed:
        raise RejectedError(
            "memo-without-digest", "the ledger keeps a memo its signed object commits to nothing"
        )
    memos.open_memo(disclosure[memos.DISCLOSURE_FIELD], signed[memos.DIGEST_FIELD])


def _signers(record: dict[str, Any], disclosure: Disclosed, deep: bool) -> Found:
    kind = record.get("type")
    if kind == REWARD:
        reward = record["reward"]
        oracle = verify_public(reward, record["attestation"])
        signers = [(oracle, Role.REWARDS_ORACLE), (reward["reading_attestor"], Role.INGEST_ATTESTOR)]
        if disclosure is None or disclosure.get("erased_at") is not None:
            return Found(signers)  # the public checks: the oracle's word on its evidence (or it was erased)
        envelope, _ingest = verify_disclosure(reward, disclosure)
        if deep:
            signing.verify(envelope["reading"], "device_id")
            signing.verify(envelope["registration"], "owner", remember=True)
            if receipts.RECEIPT_FIELD in envelope["reading"]:  # a city device's receipt (ReceiptError)
                receipts.check(envelope["reading"])
        return Found(signers, dict(envelope["reading"]["values"]))
    if kind == payments.TRANSFER:
        signing.verify(record["transfer"], "from")
        _check_memo(record["transfer"], disclosure)
    elif kind == payments.ISSUER:
        signing.verify(record["command"], "issuer")
        _check_memo(record["command"], disclosure)
        return Found([(record["command"]["issuer"], Role.ISSUER)])
    elif kind == POLICY:
        policy = parse_published(record["policy"])
        if policy.hash != record.get("policy_hash"):
            raise RejectedError(
                "policy-mismatch", f"its document is {policy.hash}, not {record.get('policy_hash')}"
            )
        return Found([(record["policy"]["publisher"], Role.POLICY_PUBLISHER)])
    elif kind == ANCHOR:  # a Merkle root of records kept off the chain (consent receipts)
        return Found([check_anchor(record["anchor"])])
    return Found()


@dataclass
class Replay:
    """What the chain's records say, folded in leaf order: who holds which role, the policies on the chain,
    what each device and wallet was paid against the caps, and the AID grants."""

    held: Authority = field(default_factory=Authority)
    policies: dict[str, Policy] = field(default_factory=dict)
    caps: Caps = field(default_factory=Caps)
    aid: AidAudit = field(default_factory=AidAudit)
    cut: list[tuple[str, RewardClaim, Policy]] = field(default_factory=list)
    """Disclosed rewards paid less than their rule pays: each must end where a cap of it is full."""

    def apply(self, record: dict[str, Any], found: Found) -> None:
        """Fold in a record whose signatures `authorise` checked: its signers held their roles as of the
        records before it, its postings balance and are exactly what its authorisation allows, its tx_id
        derives from it, a reward is within the policy it names and its caps, AID moves as its grant allows.
        A reward whose values were disclosed (auditor mode) is recomputed: it pays what its rule pays for
        them, or less only where a cap cut it (`check_cuts`, once every record is in).
        Raises `Discrepancy` (or the AID audit's error)."""
        if found.error is not None:
            raise Discrepancy(found.error)
        signers = found.signers
        try:
            postings = [Posting(p["account"], p["currency"], p["amount"]) for p in record.get("postings", [])]
            if postings:
                check_postings(postings)
            for key, role in signers:
                if not self.held.holds(key, role):
                    raise Discrepancy(f"{key} did not hold the {role} role when it was sealed")
            check_money(record, self.aid.wallet_of)
            kind = record.get("type")
            if kind == REWARD:
                claim = claim_of(record["reward"], found.values)
                if (policy := self.policies.get(claim.policy_hash)) is None:
                    raise Discrepancy(f"its policy {claim.policy_hash} is not on the chain before it")
                self.caps.check_and_count(policy, claim)
                if found.values is not None:
                    full = policy.rule_amount(claim.kind, claim.rule, found.values)
                    if claim.amount != full:
                        self.cut.append((record["tx_id"], claim, policy))
            elif kind == POLICY:  # its signature is `authorise`'s, already checked
                policy = parse_policy(record["policy"]["document"], "the policy document")
                self.policies[policy.hash] = policy
            self.held = self.held.apply(record)
            self.aid.apply(record)
        except (PostingError, PolicyError, RejectedError, signing.SignatureError, KeyError, TypeError) as exc:
            raise Discrepancy(f"its authorisation does not verify: {exc}") from exc

    def check_cuts(self) -> None:
        """Every disclosed reward paid less than its rule pays had a cap cut it: one of its caps (its device's
        hour, its wallet's or person's day) is exactly full once the whole chain is counted, as the rewards
        service cuts a payment to what a cap leaves. Raises `Discrepancy`."""
        for tx_id, claim, policy in self.cut:
            limits = [policy.device_per_hour, policy.wallet_per_day]
            if claim.person is not None and policy.person_per_day is not None:
                limits.append(policy.person_per_day)
            paid = [self.caps.paid.get(counter, 0) for counter in claim.counters]
            if not any(total == limit for total, limit in zip(paid, limits, strict=False)):
                raise Discrepancy(
                    f"transaction {tx_id}: pays {claim.amount}, less than its rule pays for its disclosed "
                    "values, and no cap of it is full"
                )


class Frontier:
    """The roots of the perfect subtrees of the leaves so far: the RFC 9162 root of any prefix of the log in
    O(log n), from the leaves alone."""

    def __init__(self) -> None:
        self._nodes: list[tuple[int, bytes]] = []  # (size, hash), sizes strictly decreasing
        self.size = 0

    def append(self, leaf_hash: bytes) -> None:
        node = (1, leaf_hash)
        while self._nodes and self._nodes[-1][0] == node[0]:
            size, left = self._nodes.pop()
            node = (size * 2, merkle.node_hash(left, node[1]))
        self._nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self._nodes:
            return merkle.EMPTY_ROOT
        root = self._nodes[-1][1]
        for _, left in reversed(self._nodes[:-1]):
            root = merkle.node_hash(left, root)
        return root


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
