"""The ledger's database access for what changes it: settling transactions (every kind: `settle_in`), policies
and the authority. Set-based SQL on asyncpg, borrowed from the SQLAlchemy engine's pool. Signed transfers, issuer
commands, grants and merchants live in `services.ledger.payment_store`, the authority's rows and lock in
`services.ledger.authority_rows`, sealing and the publication outbox in `services.ledger.blocks`, the API's reads
in `services.ledger.queries`.

Settlement is one database transaction. It locks the balance rows it debits (in a fixed order) before checking
funds, so concurrent settlers never overdraw.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.policy import Policy, parse_policy
from services.ledger.accounts import (
    Funds,
    InsufficientFundsError,
    is_issuer,
    net_changes,
    touched_accounts,
)
from services.ledger.authority import Authority, PlannedAuthority
from services.ledger.authority_rows import read_authority, write_authority
from services.ledger.policies import RewardClaim, check_claim
from services.ledger.transactions import RejectedError, Transaction, same_content


class NotFoundError(LookupError):
    """The thing asked for does not exist (or, for a proof, is not sealed yet)."""


class OutOfRangeError(ValueError):
    """A tree size or range the chain cannot answer for."""


@dataclass
class SettleOutcome:
    """What became of each transaction given to `LedgerStore.settle`."""

    settled: list[Transaction] = field(default_factory=list)
    duplicates: list[Transaction] = field(default_factory=list)
    rejected: list[tuple[Transaction, RejectedError]] = field(default_factory=list)


@dataclass(frozen=True)
class Receipt:
    """Where a settled transfer or command stands; `created` is False for a retry of a settled one."""

    tx_id: str
    seq: int
    leaf_index: int | None
    block_height: int | None
    created: bool


class LedgerStore:
    """Reads and writes of the ledger's database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._policies: dict[str, Policy] = {}

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """An asyncpg connection from the engine's pool (for bulk statements and COPY)."""
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            yield raw.driver_connection

    # ----------------------------------------------------------------------------------------------------------
    # Settlement

    async def settle(self, txs: Sequence[Transaction]) -> SettleOutcome:
        """Settle transactions in order, in one database transaction; idempotent by tx_id.

        A transaction already settled with the same content is a duplicate (no effect); one whose id is
        settled with other content, that would overdraw an account, or that moves money of a frozen account
        (a reward to a frozen wallet), is rejected. The others are inserted with their postings, queued for
        sealing, and applied to the balances.
        """
        if not txs:
            return SettleOutcome()
        async with self.connection() as conn, conn.transaction():
            # A reward rests on roles, so a batch with disclosures holds `AUTHORITY_LOCK` (which erasures rely on).
            locks = any(tx.requires or tx.disclosure is not None for tx in txs)
            held = await read_authority(conn) if locks else Authority()
            parties = sorted({p.account for tx in txs for p in tx.postings})
            frozen = await conn.fetch("SELECT account FROM frozen WHERE account = ANY($1::text[])", parties)
            return await self.settle_in(conn, txs, frozenset(r["account"] for r in frozen), held)

    async def settle_in(
        self,
        conn: asyncpg.Connection,
        txs: Sequence[Transaction],
        frozen: frozenset[str] = frozenset(),
        held: Authority | None = None,
    ) -> SettleOutcome:
        """`settle` inside the caller's database transaction; transactions touching `frozen`, or resting on
        a role a key does not hold in `held` (read under `AUTHORITY_LOCK`), are refused."""
        outcome = SettleOutcome()
        touched = touched_accounts(p for tx in txs for p in tx.postings)
        accounts, currencies = [a for a, _ in touched], [c for _, c in touched]
        # Every touched balance row exists and is locked, in one sorted order, before funds are
        # checked: concurrent settlers never overdraw and never deadlock on each other's rows.
        await conn.execute(
            """INSERT INTO balances (account, currency, balance, issuer)
               SELECT account, currency, 0, issuer
               FROM unnest($1::text[], $2::text[], $3::bool[]) AS u(account, currency, issuer)
               ORDER BY account, currency
               ON CONFLICT (account, currency) DO NOTHING""",
            accounts,
            currencies,
            [is_issuer(a) for a in accounts],
        )
        locked = await conn.fetch(
            """SELECT b.account, b.currency, b.balance
               FROM balances b JOIN unnest($1::text[], $2::text[]) AS d(account, currency)
                 ON b.account = d.account AND b.currency = d.currency
               ORDER BY b.account, b.currency FOR UPDATE OF b""",
            accounts,
            currencies,
        )
        funds = Funds({(r["account"], r["currency"]): r["balance"] for r in locked})
        # Records of ids already settled (parsed only if a transaction repeats one), and of this batch.
        known: dict[str, bytes | Transaction] = {
            r["tx_id"]: r["record"]
            for r in await conn.fetch(
                "SELECT tx_id, record FROM transactions WHERE tx_id = ANY($1::text[])",
                [t.tx_id for t in txs],
            )
        }
        claims = [tx.claim for tx in txs if tx.claim is not None]
        policies = await self._policies_in(conn, {c.policy_hash for c in claims})
        caps = await self._lock_caps(conn, claims)
        counted: dict[tuple[str, str, int], int] = {}
        planned: list[Transaction] = []
        for tx in txs:
            if (earlier := known.get(tx.tx_id)) is not None:
                record = json.loads(earlier) if isinstance(earlier, bytes) else earlier.record
                if same_content(record, tx.record):
                    outcome.duplicates.append(tx)
                else:
                    reason = RejectedError(
                        "conflicting-duplicate",
                        f"transaction {tx.tx_id} is already settled with other content",
                    )
                    outcome.rejected.append((tx, reason))
                continue
            missing = [(key, role) for key, role in tx.requires if held is None or not held.holds(key, role)]
            if missing:
                key, role = missing[0]
                outcome.rejected.append((tx, RejectedError("role-not-held", f"{key} does not hold {role}")))
                continue
            if blocked := sorted({p.account for p in tx.postings} & frozen):
                outcome.rejected.append((tx, RejectedError("account-frozen", f"{blocked[0]} is frozen")))
                continue
            if (claim := tx.claim) is not None:
                try:
                    policy = policies.get(claim.policy_hash)
                    if policy is None:
                        raise RejectedError("unknown-policy", f"no policy {claim.policy_hash} on the chain")
                    check_claim(policy, claim, *(caps.get(counter, 0) for counter in claim.counters))
                except RejectedError as exc:
                    outcome.rejected.append((tx, exc))
                    continue
            try:
                funds.apply(tx.postings)
            except InsufficientFundsError as exc:
                outcome.rejected.append((tx, RejectedError("insufficient-funds", str(exc))))
                continue
            if claim is not None:
                for counter in claim.counters:
                    caps[counter] = caps.get(counter, 0) + claim.amount
                    counted[counter] = counted.get(counter, 0) + claim.amount
            known[tx.tx_id] = tx
            planned.append(tx)
        if planned:
            await self._insert(conn, planned, outcome)
        if counted:
            await conn.execute(
                """UPDATE reward_caps c SET paid = c.paid + d.amount
                   FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[])
                        AS d(scope, key, period, amount)
                   WHERE c.scope = d.scope AND c.key = d.key AND c.period = d.period""",
                *_columns(counted),
            )
        return outcome

    async def _policies_in(self, conn: asyncpg.Connection, hashes: set[str]) -> dict[str, Policy]:
        """The policies of `hashes` that are on the chain (parsed once per process: they never change)."""
        missing = [h for h in hashes if h not in self._policies]
        if missing:
            for row in await conn.fetch(
                "SELECT policy_hash, document FROM policies WHERE policy_hash = ANY($1::text[])", missing
            ):
                self._policies[row["policy_hash"]] = parse_policy(json.loads(row["document"]))
        return {h: self._policies[h] for h in hashes if h in self._policies}

    @staticmethod
    async def _lock_caps(
        conn: asyncpg.Connection, claims: Sequence[RewardClaim]
    ) -> dict[tuple[str, str, int], int]:
        """The cap counters the claims add to, created and locked in one sorted order (as balances are)."""
        if not claims:
            return {}
        keys = sorted({counter for claim in claims for counter in claim.counters})
        columns = _columns(dict.fromkeys(keys, 0))
        await conn.execute(
            """INSERT INTO reward_caps (scope, key, period, paid)
               SELECT scope, key, period, 0
               FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(scope, key, period, paid)
               ORDER BY scope, key, period
               ON CONFLICT (scope, key, period) DO NOTHING""",
            *columns,
        )
        rows = await conn.fetch(
            """SELECT c.scope, c.key, c.period, c.paid
               FROM reward_caps c JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS d(scope, key, period)
                 ON c.scope = d.scope AND c.key = d.key AND c.period = d.period
               ORDER BY c.scope, c.key, c.period FOR UPDATE OF c""",
            *columns[:3],
        )
        return {(r["scope"], r["key"], r["period"]): r["paid"] for r in rows}

    async def settle_record(
        self, tx: Transaction, then: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
    ) -> Receipt:
        """Settle one chain record resting on roles (a policy's, an anchor's) once: the same record again
        returns its original receipt, whoever submits it. `then` writes more in the database transaction that
        settles it. Raises `RejectedError` (its signer does not hold its role, say)."""
        async with self.connection() as conn, conn.transaction():
            held = await read_authority(conn)
            existing = await conn.fetchrow(
                """SELECT t.seq, l.leaf_index, l.block_height
                   FROM transactions t LEFT JOIN leaves l ON l.seq = t.seq WHERE t.tx_id = $1""",
                tx.tx_id,
            )
            if existing is not None:
                return Receipt(
                    tx.tx_id, existing["seq"], existing["leaf_index"], existing["block_height"], False
                )
            outcome = await self.settle_in(conn, [tx], held=held)
            if outcome.rejected:
                raise outcome.rejected[0][1]
            if then is not None:
                await then(conn)
            seq = await conn.fetchval("SELECT seq FROM transactions WHERE tx_id = $1", tx.tx_id)
        return Receipt(tx.tx_id, seq, None, None, True)

    async def submit_policy(self, tx: Transaction, policy: Policy) -> Receipt:
        """Settle a policy's chain record (its publisher must hold the role), once per document
        (`settle_record`), and keep its document. Raises `RejectedError`."""

        async def keep_document(conn: asyncpg.Connection) -> None:
            await conn.execute(
                """INSERT INTO policies (policy_hash, version, document, tx_id) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (policy_hash) DO NOTHING""",
                policy.hash,
                policy.version,
                json.dumps(policy.document),
                tx.tx_id,
            )

        return await self.settle_record(tx, keep_document)

    async def policy_document(self, policy_hash: str) -> dict[str, Any]:
        """The document of a policy on the chain; raises `NotFoundError`."""
        async with self.connection() as conn:
            document = await conn.fetchval(
                "SELECT document FROM policies WHERE policy_hash = $1", policy_hash
            )
        if document is None:
            raise NotFoundError(f"no policy {policy_hash} on the chain")
        return json.loads(document)

    async def _insert(
        self, conn: asyncpg.Connection, planned: list[Transaction], outcome: SettleOutcome
    ) -> None:
        rows = await conn.fetch(
            """INSERT INTO transactions (tx_id, type, record, leaf_hash)
               SELECT tx_id, type, record, leaf_hash
               FROM unnest($1::text[], $2::text[], $3::bytea[], $4::bytea[]) WITH ORDINALITY
                    AS u(tx_id, type, record, leaf_hash, n)
               ORDER BY n
               ON CONFLICT (tx_id) DO NOTHING
               RETURNING tx_id, seq""",
            [t.tx_id for t in planned],
            [t.type for t in planned],
            [t.leaf for t in planned],
            [t.leaf_hash for t in planned],
        )
        seqs = {r["tx_id"]: r["seq"] for r in rows}
        for tx in planned:
            # Not inserted although unseen when read: cannot happen while settlers lock the rows a
            # transaction touches before reading; the unique tx_id stays the guard against paying twice.
            (outcome.settled if tx.tx_id in seqs else outcome.duplicates).append(tx)
        postings = [(seqs[tx.tx_id], p) for tx in outcome.settled for p in tx.postings]
        await conn.execute(
            """INSERT INTO postings (seq, account, currency, amount)
               SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[])""",
            [seq for seq, _ in postings],
            [p.account for _, p in postings],
            [p.currency for _, p in postings],
            [p.amount for _, p in postings],
        )
        await conn.execute("INSERT INTO pending (seq) SELECT unnest($1::bigint[])", list(seqs.values()))
        disclosed = [(tx, tx.disclosure) for tx in outcome.settled if tx.disclosure is not None]
        if disclosed:
            # The disclosure of a wallet erased before is stored erased (as of its erasure): one indexed lookup of
            # the batch's wallets among the erasures, seen whole under `AUTHORITY_LOCK` (held since `settle` began).
            await conn.execute(
                """INSERT INTO disclosures (tx_id, wallet, disclosure, erased_at)
                   SELECT u.tx_id, u.wallet, CASE WHEN e.at IS NULL THEN u.disclosure END, e.at
                   FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(tx_id, wallet, disclosure)
                   LEFT JOIN (SELECT wallet, max(erased_at) AS at FROM erasures
                              WHERE wallet = ANY($2::text[]) GROUP BY wallet) e ON e.wallet = u.wallet""",
                [tx.tx_id for tx, _ in disclosed],
                [d.wallet for _, d in disclosed],
                [d.json for _, d in disclosed],
            )
        changes = net_changes(p for _, p in postings)
        await conn.execute(
            """UPDATE balances b SET balance = b.balance + d.delta
               FROM unnest($1::text[], $2::text[], $3::bigint[]) AS d(account, currency, delta)
               WHERE b.account = d.account AND b.currency = d.currency""",
            [a for a, _ in changes],
            [c for _, c in changes],
            list(changes.values()),
        )

    # ----------------------------------------------------------------------------------------------------------
    # Authority: the root key and the roles on the chain

    async def authority(self) -> Authority:
        """The root key and role holders in force (as of the latest settled authority record)."""
        async with self.connection() as conn, conn.transaction():
            return await read_authority(conn)

    async def bootstrap(self, tx: Transaction, after: Authority) -> bool:
        """Settle the chain's bootstrap authority record, if the chain has none yet; True if it did."""
        async with self.connection() as conn, conn.transaction():
            current = await read_authority(conn, exclusive=True)
            if current.root is not None:
                return False
            outcome = await self.settle_in(conn, [tx])
            if outcome.rejected:
                raise outcome.rejected[0][1]
            await write_authority(conn, after)
        return bool(outcome.settled)

    async def submit_authority(
        self, command: Mapping[str, Any], tx_id: str, plan: Callable[[Authority, int], PlannedAuthority]
    ) -> Receipt:
        """Judge and settle a root command (`plan(authority in force, root's last nonce)`), holding
        `AUTHORITY_LOCK` exclusively; a retry of a settled one returns its original receipt. Raises
        `RejectedError`."""
        async with self.connection() as conn, conn.transaction():
            current = await read_authority(conn, exclusive=True)
            existing = await settled_receipt(conn, tx_id, "authority", command)
            if existing is not None:
                return existing
            signer = str(command.get("root"))
            last = await conn.fetchval("SELECT nonce FROM nonces WHERE account = $1", signer) or 0
            planned = plan(current, last)
            outcome = await self.settle_in(conn, [planned.tx])
            if outcome.rejected:
                raise outcome.rejected[0][1]
            await conn.execute(
                """INSERT INTO nonces (account, nonce) VALUES ($1, $2)
                   ON CONFLICT (account) DO UPDATE SET nonce = EXCLUDED.nonce""",
                signer,
                planned.nonce,
            )
            await write_authority(conn, planned.after)
            seq = await conn.fetchval("SELECT seq FROM transactions WHERE tx_id = $1", tx_id)
        return Receipt(tx_id, seq, None, None, True)


def _columns(counters: Mapping[tuple[str, str, int], int]) -> list[list[Any]]:
    """Cap counters as the columns (scope, key, period, amount) of an unnest."""
    items = sorted(counters.items())
    return [
        [k[0] for k, _ in items],
        [k[1] for k, _ in items],
        [k[2] for k, _ in items],
        [v for _, v in items],
    ]


async def settled_receipt(
    conn: asyncpg.Connection, tx_id: str, record_key: str, signed: Mapping[str, Any]
) -> Receipt | None:
    """The receipt of `tx_id` if it is settled with this very signed object; `RejectedError` if it is
    settled with another one (the signer reused a nonce); None if it is not settled."""
    existing = await conn.fetchrow(
        """SELECT t.seq, t.record, l.leaf_index, l.block_height
           FROM transactions t LEFT JOIN leaves l ON l.seq = t.seq WHERE t.tx_id = $1""",
        tx_id,
    )
    if existing is None:
        return None
    if json.loads(existing["record"]).get(record_key) != signed:
        raise RejectedError("nonce-reused", "another object with this signer and nonce is already settled")
    return Receipt(tx_id, existing["seq"], existing["leaf_index"], existing["block_height"], False)
