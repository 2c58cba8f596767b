"""The ledger when its database is unavailable, on the real PostgreSQL: a request that meets the outage (its
database refusing connections, or its connection ended mid-statement) is a 503 problem with Retry-After
(``LEDGER_RETRY_AFTER_S``) to retry, never a 500, and the very same request succeeds once the database is back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from services.common import db
from services.common.settings import PlatformSettings
from services.common.signing import Keypair, b64url_encode
from services.common.topics import MERCHANTS, REWARDS
from services.ledger.app import create_app
from services.ledger.authority_rows import AUTHORITY_LOCK
from services.ledger.settings import SERVICE, LedgerSettings
from tests.support.asgi import assert_problem, running
from tests.support.factories import TEST_ROLES
from tests.support.topics import skip_to_the_end, unique_group
from tests.support.waiting import until

pytestmark = pytest.mark.integration

RETRY_AFTER_S = 7
AUTHORITY = "/v1/authority"
COMMANDS = "/v1/issuer/commands"


def ledger_settings(issuer: Keypair) -> LedgerSettings:
    return LedgerSettings(
        signing_key=SecretStr(b64url_encode(Keypair.generate().seed)),
        consumer_group=unique_group("ledger-outage"),
        issuer_keys=issuer.did,
        verify_workers=0,
        genesis_roles=TEST_ROLES,
        retry_after_s=RETRY_AFTER_S,
    )


def mint(issuer: Keypair) -> dict[str, Any]:
    """An issuer's signed command: a write that reads and locks rows before it settles."""
    return issuer.sign(
        {
            "command": "mint",
            "issuer": issuer.did,
            "nonce": 1,
            "to": Keypair.generate().did,
            "currency": "CREDIT",
            "amount": 1_000_000,
        }
    )


def dsn(platform: PlatformSettings, database: str) -> str:
    return db.libpq_dsn(db.service_url(db.server_url(platform), database))


def assert_unavailable(response: httpx.Response) -> None:
    problem = assert_problem(response, 503)
    assert problem["type"].endswith("/database-unavailable"), problem
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)


@asynccontextmanager
async def refusing_connections(platform: PlatformSettings) -> AsyncIterator[None]:
    """The ledger's database takes no connection, and has ended every one it had, until the block exits."""
    database = platform.database_prefix + SERVICE
    admin = await asyncpg.connect(dsn(platform, "postgres"))
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = $1", database
            )
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def test_a_database_refusing_connections_is_a_503_and_the_same_requests_succeed_after(
    platform_settings: PlatformSettings,
) -> None:
    issuer = Keypair.generate()
    command = mint(issuer)
    async with running(create_app(platform_settings, ledger_settings(issuer))) as ledger:
        assert (await ledger.get(AUTHORITY)).status_code == 200
        async with refusing_connections(platform_settings):
            assert_unavailable(await ledger.get(AUTHORITY))
            assert_unavailable(await ledger.post(COMMANDS, json=command))
            ready = await ledger.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["database"] is False
        authority = await ledger.get(AUTHORITY)
        assert authority.status_code == 200 and issuer.did in authority.json()["roles"]["issuer"]
        settled = await ledger.post(COMMANDS, json=command)
        assert settled.status_code == 201, settled.text


async def test_a_connection_ended_mid_statement_is_a_503_and_the_same_requests_succeed_after(
    platform_settings: PlatformSettings,
) -> None:
    issuer = Keypair.generate()
    command = mint(issuer)
    settings = ledger_settings(issuer)
    # The ledger's consumers take the authority lock too: with nothing to read, they wait for none of it.
    for group, topic in ((settings.consumer_group, REWARDS), (settings.merchants_group, MERCHANTS)):
        await skip_to_the_end(platform_settings.bootstrap_servers, group, topic)
    async with running(create_app(platform_settings, settings)) as ledger:
        # Holding the authority lock exclusively, the test keeps both requests waiting in their first statement
        # (each reads the authority under it, shared), then ends their connections there.
        holder = await asyncpg.connect(dsn(platform_settings, platform_settings.database_prefix + SERVICE))
        waiting = "FROM pg_stat_activity WHERE datname = current_database() AND wait_event = 'advisory'"
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", AUTHORITY_LOCK)
            read = asyncio.create_task(ledger.get(AUTHORITY))
            write = asyncio.create_task(ledger.post(COMMANDS, json=command))

            async def both_waiting() -> bool:
                return await holder.fetchval(f"SELECT count(*) {waiting}") == 2

            await until(both_waiting, "both requests to wait for the authority lock")
            await holder.execute(f"SELECT pg_terminate_backend(pid, 10000) {waiting}")
            assert_unavailable(await read)
            assert_unavailable(await write)
        finally:
            await holder.close()
        assert (await ledger.get(AUTHORITY)).status_code == 200
        settled = await ledger.post(COMMANDS, json=command)
        assert settled.status_code == 201, settled.text
