"""PostgreSQL access: a database per service on one server, async SQLAlchemy on asyncpg, and Alembic
migrations kept in each service's ``migrations/`` package."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.common.embedded import postgres_url
from services.common.settings import PlatformSettings

SERVICES_DIR = Path(__file__).resolve().parents[1]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,  # the server is gone, refuses connections, or aborted a transaction (deadlock, serialization)
    InterfaceError,  # the connection broke
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
)
"""Database errors that say the database failed, not the data: a consumer retries the batch they hit."""

ERROR_TYPES: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    SQLAlchemyError,
)
"""What a database error is raised as; `is_unavailable` tells which of them say the database is unavailable."""

UNAVAILABLE_SQLSTATES = ("08", "53300", "57P01", "57P02", "57P03")
"""PostgreSQL error codes (or their class) of a database that cannot serve now: a connection exception, too many
connections, a connection ended by an administrator or a crash, a server starting up or shutting down."""

NOT_ACCEPTING_CONNECTIONS = "55000"
"""The code of a connection refused by a database that takes none now (``ALLOW_CONNECTIONS false``)."""


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or dropped the connection (retry later), rather
    than that a statement or its data is wrong: a socket error (connection refused, reset, timed out), the
    pool's timeout, a connection lost mid-statement, or PostgreSQL refusing the connection. Follows the chain
    as a traceback shows it: through SQLAlchemy's wrapper (``__cause__``) to asyncpg's error, and from an error
    met while handling another (``__context__``: a transaction that cannot roll back on a connection lost
    mid-statement) to that one. Bad input (an integer out of range, asyncpg's DataError) is never
    unavailability."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, OSError | asyncpg.PostgresConnectionError | PoolTimeoutError):
            return True
        if isinstance(link, DBAPIError) and link.connection_invalidated:
            return True
        if isinstance(link, asyncpg.PostgresError):
            state = str(link.sqlstate)
            # SQLAlchemy's wrapper without a statement: its pool's connect was refused.
            at_connect = isinstance(exc, DBAPIError) and exc.statement is None
            if state.startswith(UNAVAILABLE_SQLSTATES) or (state == NOT_ACCEPTING_CONNECTIONS and at_connect):
                return True
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return False


def server_url(settings: PlatformSettings) -> str:
    """The PostgreSQL server URL: DATABASE_URL, else the embedded server under the data dir."""
    return settings.database_url or postgres_url(settings.data_dir)


def service_url(server: str, database: str, driver: str = "postgresql+asyncpg") -> URL:
    """The URL of `database` on the server of `server`, for a SQLAlchemy `driver`."""
    return make_url(server).set(drivername=driver, database=database)


def libpq_dsn(url: URL) -> str:
    """A plain ``postgresql://`` DSN (for asyncpg.connect) of a SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def ensure_database(server: str, database: str) -> bool:
    """Create `database` on the server if it is missing; True if it was created."""
    admin = libpq_dsn(service_url(server, "postgres"))
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{database}"')
        except asyncpg.DuplicateDatabaseError:
            return False  # another process created it meanwhile
        return True
    finally:
        await conn.close()


def alembic_config(service: str, url: URL) -> Config:
    """The Alembic config of a service's migrations (``services/<service>/migrations``)."""
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.set_main_option("sqlalchemy.url", url.render_as_string(hide_password=False).replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(service: str, url: URL, revision: str = "head") -> None:
    """Upgrade a service's database to `revision` (blocking; it runs its own event loop)."""
    command.upgrade(alembic_config(service, url), revision)


async def prepare_database(settings: PlatformSettings, service: str) -> URL:
    """Create the service's database if needed, migrate it to head, and return its URL."""
    server = await asyncio.to_thread(server_url, settings)
    url = service_url(server, settings.database_prefix + service)
    await ensure_database(server, url.database or service)
    await asyncio.to_thread(migrate, service, url)
    return url


def create_engine(url: URL, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
