"""A service whose database is unavailable answers 503 database-unavailable with Retry-After, wherever a route met
it (`services.common.http.install_problem_handlers`, `services.common.db.is_unavailable`): a connection refused,
the pool's timeout, a connection lost or refused by PostgreSQL. What is wrong with a statement or its data stays a
500: a bug is never dressed as a 503. The outages themselves, on the real PostgreSQL:
``tests/integration/test_ledger_database_outage.py``."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from services.common.http import create_app
from tests.support.asgi import assert_problem

RETRY_AFTER_S = 9


def wrapped(error: Exception, statement: str | None = None) -> DBAPIError:
    """`error` as SQLAlchemy raises a driver's error: wrapped, the driver's error its cause (no statement: its
    pool's connect)."""
    wrapper = DBAPIError(statement, None, error)
    wrapper.__cause__ = error
    return wrapper


def raised_while_handling(error: Exception, then: Exception) -> Exception:
    """`then`, raised while `error` was being handled (its ``__context__``)."""
    try:
        try:
            raise error
        except type(error):
            raise then  # noqa: B904 (implicitly chained, as asyncpg's transaction raises it)
    except type(then) as exc:
        return exc


UNAVAILABLE = {
    "connection refused": lambda: ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
    "pool timeout": lambda: PoolTimeoutError("QueuePool limit of size 10 overflow 10 reached"),
    "connection lost mid-statement": lambda: asyncpg.exceptions.ConnectionDoesNotExistError(
        "connection was closed in the middle of operation"
    ),
    "its transaction's exit after the loss": lambda: raised_while_handling(
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.exceptions.InterfaceError(
            "cannot call Transaction.__aexit__(): the underlying connection is closed"
        ),
    ),
    "ended by an administrator": lambda: wrapped(
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        "SELECT 1",
    ),
    "server starting up": lambda: wrapped(
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up")
    ),
    "too many connections": lambda: wrapped(
        asyncpg.exceptions.TooManyConnectionsError("sorry, too many clients already")
    ),
    "database not accepting connections": lambda: wrapped(
        asyncpg.exceptions.ObjectNotInPrerequisiteStateError(
            'database "ledger" is not currently accepting connections'
        )
    ),
}
FAILING = {
    "an integer beyond int64": lambda: asyncpg.exceptions.DataError(
        "invalid input for query argument $1: 18446744073709551616 (value out of int64 range)"
    ),
    "a unique violation": lambda: wrapped(
        asyncpg.exceptions.UniqueViolationError("duplicate key value"), "INSERT INTO nonces ..."
    ),
    "a statement's 55000": lambda: wrapped(
        asyncpg.exceptions.ObjectNotInPrerequisiteStateError("currval of sequence is not yet defined"),
        "SELECT currval('s')",
    ),
    "a syntax error": lambda: asyncpg.exceptions.PostgresSyntaxError('syntax error at or near "SELEC"'),
    "another operation in progress": lambda: asyncpg.exceptions.InterfaceError(
        "cannot perform operation: another operation is in progress"
    ),
}
CASES = {**UNAVAILABLE, **FAILING}


APP = create_app(service="test", version="0", retry_after_s=RETRY_AFTER_S)


@APP.get("/raise/{case}")
async def raising(case: str) -> None:
    raise CASES[case]()


async def answer(case: str) -> httpx.Response:
    # The 500 handler answers, then re-raises to the server (which logs it): not to the test.
    transport = httpx.ASGITransport(app=APP, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(f"/raise/{case}")


@pytest.mark.parametrize("case", sorted(UNAVAILABLE))
async def test_a_database_that_did_not_answer_is_a_503_to_retry(case: str) -> None:
    response = await answer(case)
    assert assert_problem(response, 503)["type"].endswith("/database-unavailable")
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)


@pytest.mark.parametrize("case", sorted(FAILING))
async def test_a_failing_statement_is_still_a_500(case: str) -> None:
    response = await answer(case)
    assert assert_problem(response, 500)["type"].endswith("/internal-error")
    assert "retry-after" not in response.headers
