"""The authority's rows and lock: who holds which role, as every settlement, erasure and root command of the
ledger reads and changes it in its own database transaction."""

from __future__ import annotations

import hashlib

import asyncpg

from services.ledger.authority import Authority

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


async def read_authority(conn: asyncpg.Connection, exclusive: bool = False) -> Authority:
    """The authority in force, read under `AUTHORITY_LOCK` (shared, or `exclusive` to change it) until the
    caller's transaction ends."""
    lock = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await conn.execute(f"SELECT {lock}($1)", AUTHORITY_LOCK)
    root = await conn.fetchval("SELECT root FROM authority WHERE id = 1")
    holders: dict[str, set[str]] = {}
    for row in await conn.fetch("SELECT role, key FROM roles"):
        holders.setdefault(row["role"], set()).add(row["key"])
    return Authority(root, {role: frozenset(keys) for role, keys in holders.items()})


async def write_authority(conn: asyncpg.Connection, authority: Authority) -> None:
    """Replace the authority in force (the caller holds `AUTHORITY_LOCK` exclusively)."""
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
