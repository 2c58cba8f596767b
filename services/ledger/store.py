"""The ledger's database access: set-based SQL on asyncpg, borrowed from the SQLAlchemy engine's pool.

Settlement and sealing are each one database transaction. Settlement locks the balance rows it debits
(in a fixed order) before checking funds, so concurrent settlers never overdraw; sealing holds a
transaction-scoped advisory lock, so however many ledger processes run, one seals at a time and the
chain never forks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common import merkle
from services.common.events import now_rfc3339
from services.common.policy import Policy, parse_policy
from services.common.roles import Role
from services.common.signing import Keypair
from services.ledger import chain, payments, tree
from services.ledger.accounts import (
    WALLET_PREFIX,
    Funds,
    InsufficientFundsError,
    is_issuer,
    net_changes,
    touched_accounts,
)
from services.ledger.authority import Authority, PlannedAuthority
from services.ledger.policies import RewardClaim, check_claim
from services.ledger.transactions import RejectedError, Transaction, same_content

SEALER_LOCK = int.from_bytes(hashlib.sha256(b"smartcity.ledger.sealer").digest()[:8], "big", signed=True)
"""The advisory lock key the sealer holds for the length of its transaction (advisory locks are per
database, so ledgers of different databases never contend)."""

AUTHORITY_LOCK = int.from_bytes(
    hashlib.sha256(b"smartcity.ledger.authority").digest()[:8], "big", signed=True
)
"""Settlements hold it shared and authority changes exclusively, for their whole transaction: a role is never
revoked between a settlement's check of it and that settlement's place in the chain, so the chain's order is
the order in which roles were checked (what the verifier replays).

A wallet's erasure holds it exclusively too, for the moment it records the erasure
(`services.ledger.disclosures.DisclosureReads.erase_settled`): every settlement storing a disclosure holds it
shared, so each one either stored before (and the erasure erases what it stored) or looks the wallet up after
(and stores its disclosure erased)."""

MAX_SEQ = 2**63 - 1
WALLETS_LIKE = WALLET_PREFIX + "%"


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
class SealedBlock:
    header: chain.BlockHeader
    first_leaf: int

    @property
    def size(self) -> int:
        """Transactions in the block."""
        return self.header.tree_size - self.first_leaf


@dataclass(frozen=True)
class SettledPosting:
    """A sealed transaction's posting on a wallet: one ``city.ledger.settled.v1`` event."""

    tx_id: str
    type: str
    wallet: str
    currency: str
    delta: int
    leaf_index: int


@dataclass(frozen=True)
class Submission:
    """A signed transfer or issuer command to judge (`plan`) on facts read under lock."""

    signed: Mapping[str, Any]
    record_key: str
    """Where the record holds the signed object ("transfer" or "command")."""
    signer: str
    tx_id: str
    plan: Callable[[payments.Facts], payments.Planned]
    recipient: str | None = None
    grant_id: str | None = None
    settled: Callable[[asyncpg.Connection, payments.Planned], Awaitable[None]] | None = None
    """More writes in the database transaction that settles it (never on a retry): its memo's disclosure,
    kept off the chain (`services.ledger.memos`)."""


@dataclass(frozen=True)
class Receipt:
    """Where a settled transfer or command stands; `created` is False for a retry of a settled one."""

    tx_id: str
    seq: int
    leaf_index: int | None
    block_height: int | None
    created: bool


@dataclass(frozen=True)
class InclusionProof:
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    audit_path: list[bytes]


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
            held = await self._authority_in(conn) if locks else Authority()
            parties = sorted({p.account for tx in txs for p in tx.postings})
            frozen = await conn.fetch("SELECT account FROM frozen WHERE account = ANY($1::text[])", parties)
            return await self._settle_in(conn, txs, frozenset(r["account"] for r in frozen), held)

    async def _settle_in(
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

    async def submit_policy(self, tx: Transaction, policy: Policy) -> Receipt:
        """Settle a policy's chain record (its publisher must hold the role), once per document: a policy
        already on the chain returns its original receipt, whoever publishes it again. Raises
        `RejectedError`."""
        async with self.connection() as conn, conn.transaction():
            held = await self._authority_in(conn)
            existing = await conn.fetchrow(
                """SELECT t.seq, l.leaf_index, l.block_height
                   FROM transactions t LEFT JOIN leaves l ON l.seq = t.seq WHERE t.tx_id = $1""",
                tx.tx_id,
            )
            if existing is not None:
                return Receipt(
                    tx.tx_id, existing["seq"], existing["leaf_index"], existing["block_height"], False
                )
            outcome = await self._settle_in(conn, [tx], held=held)
            if outcome.rejected:
                raise outcome.rejected[0][1]
            await conn.execute(
                """INSERT INTO policies (policy_hash, version, document, tx_id) VALUES ($1, $2, $3, $4)
                   ON CONFLICT (policy_hash) DO NOTHING""",
                policy.hash,
                policy.version,
                json.dumps(policy.document),
                tx.tx_id,
            )
            seq = await conn.fetchval("SELECT seq FROM transactions WHERE tx_id = $1", tx.tx_id)
        return Receipt(tx.tx_id, seq, None, None, True)

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
    # Signed transfers and issuer commands

    async def submit(self, request: Submission) -> Receipt:
        """Judge and settle one signed transfer or issuer command in one database transaction.

        The signer's nonce row is locked first, so two submissions by one signer (from any number of
        ledger processes) are judged one after the other on up-to-date facts: none can overspend or reuse
        a nonce. A retry of an already settled object returns its original receipt. Raises `RejectedError`.
        """
        async with self.connection() as conn, conn.transaction():
            held = await self._authority_in(conn)
            await conn.execute(
                "INSERT INTO nonces (account, nonce) VALUES ($1, 0) ON CONFLICT (account) DO NOTHING",
                request.signer,
            )
            last = await conn.fetchval(
                "SELECT nonce FROM nonces WHERE account = $1 FOR UPDATE", request.signer
            )
            existing = await self._existing(conn, request.tx_id, request.record_key, request.signed)
            if existing is not None:
                return existing
            parties = [a for a in (request.signer, request.recipient) if a]
            frozen = {
                r["account"]
                for r in await conn.fetch(
                    "SELECT account FROM frozen WHERE account = ANY($1::text[])", parties
                )
            }
            merchant = None
            if request.recipient:
                row = await conn.fetchrow("SELECT * FROM merchants WHERE wallet = $1", request.recipient)
                merchant = None if row is None else _merchant(row)
            grants = [
                _grant(r)
                for r in await conn.fetch(
                    """SELECT * FROM grants WHERE wallet = $1 AND closed IS NULL
                       ORDER BY grant_id FOR UPDATE""",
                    request.signer,
                )
            ]
            recipient_currencies: frozenset[str] = frozenset()
            aid_holders: frozenset[str] = frozenset()
            if request.recipient:
                recipient_currencies = frozenset(
                    r["currency"]
                    for r in await conn.fetch(
                        "SELECT currency FROM balances WHERE account = $1", request.recipient
                    )
                )
                aid_holders = frozenset(
                    r["wallet"]
                    for r in await conn.fetch(
                        "SELECT DISTINCT wallet FROM grants WHERE wallet = ANY($1::text[])", parties
                    )
                )
            grant = None
            if request.grant_id:
                row = await conn.fetchrow(
                    "SELECT * FROM grants WHERE grant_id = $1 AND closed IS NULL FOR UPDATE", request.grant_id
                )
                grant = None if row is None else _grant(row)
            facts = payments.Facts(
                now=datetime.now(UTC),
                last_nonce=last,
                frozen=frozenset(frozen),
                merchant=merchant,
                grants=grants,
                issuer_keys=held.holders.get(Role.ISSUER, frozenset()),
                grant=grant,
                recipient_currencies=recipient_currencies,
                aid_holders=aid_holders,
            )
            planned = request.plan(facts)
            outcome = await self._settle_in(conn, [planned.tx])
            if outcome.rejected:
                raise outcome.rejected[0][1]
            await self._apply_effects(conn, planned)
            if request.settled is not None:
                await request.settled(conn, planned)
            seq = await conn.fetchval("SELECT seq FROM transactions WHERE tx_id = $1", request.tx_id)
        return Receipt(request.tx_id, seq, None, None, True)

    @staticmethod
    async def _apply_effects(conn: asyncpg.Connection, planned: payments.Planned) -> None:
        await conn.execute("UPDATE nonces SET nonce = $2 WHERE account = $1", planned.signer, planned.nonce)
        if planned.draws:
            await conn.execute(
                """UPDATE grants g SET remaining = g.remaining - d.amount
                   FROM unnest($1::text[], $2::bigint[]) AS d(grant_id, amount) WHERE g.grant_id = d.grant_id""",
                [g for g, _ in planned.draws],
                [a for _, a in planned.draws],
            )
        if planned.close_grant:
            await conn.execute(
                "UPDATE grants SET closed = 'revoked' WHERE grant_id = $1", planned.close_grant
            )
        if (grant := planned.new_grant) is not None:
            await conn.execute(
                """INSERT INTO grants (grant_id, wallet, amount, remaining, categories, expires_at)
                   VALUES ($1, $2, $3, $3, $4, $5)""",
                grant.grant_id,
                grant.wallet,
                grant.remaining,
                sorted(grant.categories),
                grant.expires_at,
            )
        if planned.freeze:
            await conn.execute(
                "INSERT INTO frozen (account, tx_id) VALUES ($1, $2) ON CONFLICT (account) DO NOTHING",
                planned.freeze,
                planned.tx.tx_id,
            )
        if planned.unfreeze:
            await conn.execute("DELETE FROM frozen WHERE account = $1", planned.unfreeze)

    async def expire_grants(self, timestamp: str, limit: int = 500) -> list[Transaction]:
        """Return the unspent AID of grants expired by `timestamp` (the records' time) to the aid pool;
        returns the transactions settled.

        Grants are locked with SKIP LOCKED, so ledger processes running this at once share the work, and
        the expiry transaction's id is one per grant, so none is ever returned twice. The cut-off is the
        records' own timestamp, so no expiry on the chain predates its grant's ``expires_at``.
        """
        async with self.connection() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT * FROM grants WHERE closed IS NULL AND expires_at <= $2
                   ORDER BY expires_at, grant_id LIMIT $1 FOR UPDATE SKIP LOCKED""",
                limit,
                payments.parse_time(timestamp),
            )
            if not rows:
                return []
            grants = [_grant(r) for r in rows]
            outcome = await self._settle_in(
                conn, [payments.plan_expiry(g, timestamp) for g in grants if g.remaining > 0]
            )
            await conn.execute(
                "UPDATE grants SET remaining = 0, closed = 'expired' WHERE grant_id = ANY($1::text[])",
                [g.grant_id for g in grants],
            )
        return outcome.settled

    # ----------------------------------------------------------------------------------------------------------
    # Authority: the root key and the roles on the chain

    @staticmethod
    async def _authority_in(conn: asyncpg.Connection, exclusive: bool = False) -> Authority:
        """The authority in force, read under `AUTHORITY_LOCK` (shared, or `exclusive` to change it)."""
        lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
        await conn.execute(f"SELECT {lock}($1)", AUTHORITY_LOCK)
        root = await conn.fetchval("SELECT root FROM authority WHERE id = 1")
        holders: dict[str, set[str]] = {}
        for row in await conn.fetch("SELECT role, key FROM roles"):
            holders.setdefault(row["role"], set()).add(row["key"])
        return Authority(root, {role: frozenset(keys) for role, keys in holders.items()})

    async def authority(self) -> Authority:
        """The root key and role holders in force (as of the latest settled authority record)."""
        async with self.connection() as conn, conn.transaction():
            return await self._authority_in(conn)

    async def bootstrap(self, tx: Transaction, after: Authority) -> bool:
        """Settle the chain's bootstrap authority record, if the chain has none yet; True if it did."""
        async with self.connection() as conn, conn.transaction():
            current = await self._authority_in(conn, exclusive=True)
            if current.root is not None:
                return False
            outcome = await self._settle_in(conn, [tx])
            if outcome.rejected:
                raise outcome.rejected[0][1]
            await self._write_authority(conn, after)
        return bool(outcome.settled)

    async def submit_authority(
        self, command: Mapping[str, Any], tx_id: str, plan: Callable[[Authority, int], PlannedAuthority]
    ) -> Receipt:
        """Judge and settle a root command (`plan(authority in force, root's last nonce)`), holding
        `AUTHORITY_LOCK` exclusively; a retry of a settled one returns its original receipt. Raises
        `RejectedError`."""
        async with self.connection() as conn, conn.transaction():
            current = await self._authority_in(conn, exclusive=True)
            existing = await self._existing(conn, tx_id, "authority", command)
            if existing is not None:
                return existing
            signer = str(command.get("root"))
            last = await conn.fetchval("SELECT nonce FROM nonces WHERE account = $1", signer) or 0
            planned = plan(current, last)
            outcome = await self._settle_in(conn, [planned.tx])
            if outcome.rejected:
                raise outcome.rejected[0][1]
            await conn.execute(
                """INSERT INTO nonces (account, nonce) VALUES ($1, $2)
                   ON CONFLICT (account) DO UPDATE SET nonce = EXCLUDED.nonce""",
                signer,
                planned.nonce,
            )
            await self._write_authority(conn, planned.after)
            seq = await conn.fetchval("SELECT seq FROM transactions WHERE tx_id = $1", tx_id)
        return Receipt(tx_id, seq, None, None, True)

    @staticmethod
    async def _existing(
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
            raise RejectedError(
                "nonce-reused", "another object with this signer and nonce is already settled"
            )
        return Receipt(tx_id, existing["seq"], existing["leaf_index"], existing["block_height"], False)

    @staticmethod
    async def _write_authority(conn: asyncpg.Connection, authority: Authority) -> None:
        await conn.execute(
            """INSERT INTO authority (id, root) VALUES (1, $1)
               ON CONFLICT (id) DO UPDATE SET root = EXCLUDED.root""",
            authority.root,
        )
        await conn.execute("DELETE FROM roles")
        pairs = [(role, key) for role, keys in authority.holders.items() for key in keys]
        await conn.execute(
            "INSERT INTO roles (role, key) SELECT * FROM unnest($1::text[], $2::text[])",
            [role for role, _ in pairs],
            [key for _, key in pairs],
        )

    async def fold_merchants(self, values: Sequence[Mapping[str, Any]]) -> None:
        """Fold ``city.merchants.v1`` values into the latest per wallet (a later ``updated_at`` wins)."""
        latest: dict[str, Mapping[str, Any]] = {}
        for value in values:
            held = latest.get(value["wallet"])
            if held is None or payments.parse_time(held["updated_at"]) <= payments.parse_time(
                value["updated_at"]
            ):
                latest[value["wallet"]] = value
        if not latest:
            return
        items = list(latest.values())
        async with self.connection() as conn:
            await conn.execute(
                """INSERT INTO merchants (wallet, category, locally_owned, verified, active, accepts, updated_at)
                   SELECT wallet, category, locally_owned, verified, active, string_to_array(accepts, ','),
                          updated_at
                   FROM unnest($1::text[], $2::text[], $3::bool[], $4::bool[], $5::bool[], $6::text[],
                               $7::timestamptz[])
                        AS u(wallet, category, locally_owned, verified, active, accepts, updated_at)
                   ON CONFLICT (wallet) DO UPDATE SET category = EXCLUDED.category,
                     locally_owned = EXCLUDED.locally_owned, verified = EXCLUDED.verified,
                     active = EXCLUDED.active,
                     accepts = EXCLUDED.accepts, updated_at = EXCLUDED.updated_at
                   WHERE merchants.updated_at <= EXCLUDED.updated_at""",
                [v["wallet"] for v in items],
                [v["category"] for v in items],
                [v["locally_owned"] for v in items],
                [v["verified"] for v in items],
                [v.get("active", True) for v in items],
                [",".join(v["accepts"]) for v in items],
                [payments.parse_time(v["updated_at"]) for v in items],
            )

    # ----------------------------------------------------------------------------------------------------------
    # Sealing

    async def seal(self, keypair: Keypair, max_txs: int) -> SealedBlock | None:
        """Seal up to `max_txs` pending transactions into the next block; None if nothing is pending or
        another process is sealing right now.

        Pending transactions are taken in settlement order and given consecutive leaf indexes; the newly
        complete Merkle nodes, the leaves and the signed header are written in the same transaction.
        """
        async with self.connection() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", SEALER_LOCK):
                return None
            rows = await conn.fetch(
                """SELECT p.seq, t.leaf_hash FROM pending p JOIN transactions t ON t.seq = p.seq
                   ORDER BY p.seq LIMIT $1""",
                max_txs,
            )
            if not rows:
                return None
            previous = await self._latest_header(conn)
            size = previous.tree_size if previous else 0
            frontier = await self._nodes(conn, tree.frontier(size))
            new_nodes, root = tree.append(size, [r["leaf_hash"] for r in rows], frontier)
            header = chain.next_header(
                previous, keypair, tree_size=size + len(rows), root_hash=root, timestamp=now_rfc3339()
            )
            seqs = [r["seq"] for r in rows]
            await conn.execute("DELETE FROM pending WHERE seq = ANY($1::bigint[])", seqs)
            await conn.copy_records_to_table(
                "leaves",
                records=[(size + i, seq, header.height) for i, seq in enumerate(seqs)],
                columns=["leaf_index", "seq", "block_height"],
            )
            await conn.copy_records_to_table(
                "tree_nodes", records=new_nodes, columns=["level", "idx", "hash"]
            )
            await conn.execute(
                "INSERT INTO blocks (height, tree_size, header) VALUES ($1, $2, $3)",
                header.height,
                header.tree_size,
                header.canonical_bytes(),
            )
        return SealedBlock(header, first_leaf=size)

    @staticmethod
    async def _latest_header(conn: asyncpg.Connection) -> chain.BlockHeader | None:
        raw = await conn.fetchval("SELECT header FROM blocks ORDER BY height DESC LIMIT 1")
        return None if raw is None else chain.BlockHeader.from_json(json.loads(raw))

    @staticmethod
    async def _nodes(conn: asyncpg.Connection, keys: Iterable[tree.NodeKey]) -> dict[tree.NodeKey, bytes]:
        keys = list(keys)
        if not keys:
            return {}
        rows = await conn.fetch(
            """SELECT n.level, n.idx, n.hash
               FROM tree_nodes n JOIN unnest($1::smallint[], $2::bigint[]) AS k(level, idx)
                 ON n.level = k.level AND n.idx = k.idx""",
            [level for level, _ in keys],
            [index for _, index in keys],
        )
        nodes = {(r["level"], r["idx"]): r["hash"] for r in rows}
        if len(nodes) != len(keys):
            missing = sorted(set(keys) - set(nodes))
            raise RuntimeError(f"the Merkle tree is missing stored nodes {missing[:5]}")
        return nodes

    # ----------------------------------------------------------------------------------------------------------
    # Publication (an outbox: blocks whose events are not yet acknowledged by the broker)

    async def unpublished_blocks(self, limit: int = 100) -> list[SealedBlock]:
        """Sealed blocks whose events are not yet published, oldest first."""
        async with self.connection() as conn:
            rows = await conn.fetch(
                """SELECT b.header,
                          COALESCE((SELECT p.tree_size FROM blocks p WHERE p.height = b.height - 1), 0) AS first_leaf
                   FROM blocks b WHERE b.published_at IS NULL ORDER BY b.height LIMIT $1""",
                limit,
            )
        return [
            SealedBlock(chain.BlockHeader.from_json(json.loads(r["header"])), r["first_leaf"]) for r in rows
        ]

    async def wallet_postings(self, block: SealedBlock) -> list[SettledPosting]:
        """The postings on wallets (not system accounts) of the block's transactions, in leaf order."""
        async with self.connection() as conn:
            rows = await conn.fetch(
                """SELECT l.leaf_index, t.tx_id, t.type, p.account, p.currency, p.amount
                   FROM leaves l JOIN transactions t ON t.seq = l.seq JOIN postings p ON p.seq = l.seq
                   WHERE l.leaf_index >= $1 AND l.leaf_index < $2 AND p.account LIKE $3
                   ORDER BY l.leaf_index, p.account, p.currency""",
                block.first_leaf,
                block.header.tree_size,
                WALLETS_LIKE,
            )
        return [
            SettledPosting(r["tx_id"], r["type"], r["account"], r["currency"], r["amount"], r["leaf_index"])
            for r in rows
        ]

    async def mark_published(self, height: int) -> None:
        async with self.connection() as conn:
            await conn.execute("UPDATE blocks SET published_at = now() WHERE height = $1", height)

    # ----------------------------------------------------------------------------------------------------------
    # Queries

    async def latest_header(self) -> chain.BlockHeader | None:
        async with self.connection() as conn:
            return await self._latest_header(conn)

    async def block(self, height: int) -> tuple[chain.BlockHeader, list[str]]:
        """A block's header and its transaction ids in leaf order; raises `NotFoundError`."""
        async with self.connection() as conn:
            row = await conn.fetchrow(
                """SELECT b.header,
                          COALESCE((SELECT p.tree_size FROM blocks p WHERE p.height = b.height - 1), 0) AS first_leaf
                   FROM blocks b WHERE b.height = $1""",
                height,
            )
            if row is None:
                raise NotFoundError(f"no block at height {height}")
            header = chain.BlockHeader.from_json(json.loads(row["header"]))
            tx_ids = await conn.fetch(
                """SELECT t.tx_id FROM leaves l JOIN transactions t ON t.seq = l.seq
                   WHERE l.leaf_index >= $1 AND l.leaf_index < $2 ORDER BY l.leaf_index""",
                row["first_leaf"],
                header.tree_size,
            )
        return header, [r["tx_id"] for r in tx_ids]

    async def balances(self, account: str) -> dict[str, int]:
        """The account's balance per currency it ever held."""
        async with self.connection() as conn:
            rows = await conn.fetch("SELECT currency, balance FROM balances WHERE account = $1", account)
        return {r["currency"]: r["balance"] for r in rows}

    async def last_nonce(self, signer: str) -> int:
        """The last nonce the ledger accepted from `signer` (a transfer's sender or an issuer), 0 if none."""
        async with self.connection() as conn:
            return await conn.fetchval("SELECT nonce FROM nonces WHERE account = $1", signer) or 0

    async def top_wallets(self, currency: str, limit: int) -> list[tuple[str, int]]:
        """The wallets (system accounts left out) holding the most of `currency`."""
        async with self.connection() as conn:
            rows = await conn.fetch(
                """SELECT account, balance FROM balances WHERE currency = $1 AND account LIKE $2
                   ORDER BY balance DESC, account LIMIT $3""",
                currency,
                WALLETS_LIKE,
                limit,
            )
        return [(r["account"], r["balance"]) for r in rows]

    async def account_transactions(
        self, account: str, limit: int, before: int | None = None
    ) -> list[dict[str, Any]]:
        """The account's transactions, newest first, those with ``seq < before``; each with its changes."""
        async with self.connection() as conn:
            rows = await conn.fetch(
                """SELECT t.seq, t.tx_id, t.type, t.settled_at, l.leaf_index, l.block_height, p.currency, p.amount
                   FROM (SELECT DISTINCT seq FROM postings WHERE account = $1 AND seq < $2
                         ORDER BY seq DESC LIMIT $3) s
                   JOIN transactions t ON t.seq = s.seq
                   JOIN postings p ON p.seq = s.seq AND p.account = $1
                   LEFT JOIN leaves l ON l.seq = s.seq
                   ORDER BY t.seq DESC, p.currency""",
                account,
                MAX_SEQ if before is None else before,
                limit,
            )
        items: dict[int, dict[str, Any]] = {}
        for r in rows:
            item = items.setdefault(
                r["seq"],
                {
                    "tx_id": r["tx_id"],
                    "leaf_index": r["leaf_index"],
                    "block_height": r["block_height"],
                    "type": r["type"],
                    "changes": {},
                    "settled_at": _rfc3339(r["settled_at"]),
                    "seq": r["seq"],
                },
            )
            item["changes"][r["currency"]] = r["amount"]
        return list(items.values())

    async def transaction_record(self, tx_id: str) -> bytes:
        """The exact leaf bytes (JCS of the record) of a transaction; raises `NotFoundError`."""
        async with self.connection() as conn:
            record = await conn.fetchval("SELECT record FROM transactions WHERE tx_id = $1", tx_id)
        if record is None:
            raise NotFoundError(f"no transaction {tx_id}")
        return record

    async def inclusion_proof(self, tx_id: str, tree_size: int | None = None) -> InclusionProof:
        """The inclusion proof of a sealed transaction in the tree of `tree_size` (default: the latest).

        Raises `NotFoundError` (unknown or not sealed) or `OutOfRangeError` (size beyond the latest sealed
        size, or not covering the leaf). Reads O(log n) stored nodes in one query.
        """
        async with self.connection() as conn:
            row = await conn.fetchrow(
                """SELECT t.leaf_hash, l.leaf_index FROM transactions t LEFT JOIN leaves l ON l.seq = t.seq
                   WHERE t.tx_id = $1""",
                tx_id,
            )
            if row is None:
                raise NotFoundError(f"no transaction {tx_id}")
            index = row["leaf_index"]
            if index is None:
                raise NotFoundError(f"transaction {tx_id} is not sealed into a block yet")
            latest = await self._latest_tree_size(conn)
            size = latest if tree_size is None else tree_size
            if size > latest:
                raise OutOfRangeError(f"tree_size {size} is beyond the latest checkpoint's {latest}")
            if size <= index:
                raise OutOfRangeError(f"a tree of {size} leaves does not hold leaf {index}")

            def build(subtree: merkle.SubtreeFn) -> list[bytes]:
                return merkle.inclusion_proof(index, size, subtree)

            nodes = await self._nodes(conn, tree.nodes_read_by(build))
        return InclusionProof(index, size, row["leaf_hash"], tree.run_on_nodes(build, nodes))

    async def consistency_proof(self, first: int, second: int) -> list[bytes]:
        """The consistency proof between tree sizes ``1 <= first <= second <= latest``; else `OutOfRangeError`."""
        async with self.connection() as conn:
            latest = await self._latest_tree_size(conn)
            if not 1 <= first <= second <= latest:
                raise OutOfRangeError(f"need 1 <= first <= second <= {latest} (the latest tree size)")

            def build(subtree: merkle.SubtreeFn) -> list[bytes]:
                return merkle.consistency_proof(first, second, subtree)

            nodes = await self._nodes(conn, tree.nodes_read_by(build))
        return tree.run_on_nodes(build, nodes)

    @staticmethod
    async def _latest_tree_size(conn: asyncpg.Connection) -> int:
        return await conn.fetchval("SELECT tree_size FROM blocks ORDER BY height DESC LIMIT 1") or 0


def _columns(counters: Mapping[tuple[str, str, int], int]) -> list[list[Any]]:
    """Cap counters as the columns (scope, key, period, amount) of an unnest."""
    items = sorted(counters.items())
    return [
        [k[0] for k, _ in items],
        [k[1] for k, _ in items],
        [k[2] for k, _ in items],
        [v for _, v in items],
    ]


def _merchant(row: asyncpg.Record) -> payments.Merchant:
    return payments.Merchant(
        row["wallet"],
        row["category"],
        row["locally_owned"],
        row["active"],
        frozenset(row["accepts"]),
        row["verified"],
    )


def _grant(row: asyncpg.Record) -> payments.Grant:
    return payments.Grant(
        row["grant_id"], row["wallet"], row["remaining"], frozenset(row["categories"]), row["expires_at"]
    )


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
