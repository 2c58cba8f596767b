"""The HTTP side every client shares: one pooled ``httpx.Client`` per service, JSON in and out, problem JSON
raised as `ProblemError`, and retries.

Retries. Every call is retried when the service answers 429 or 503: the platform answers so only when it took
nothing (a device over its rate, a broker or database that could not take the write), and says when to come
back in ``Retry-After``, which is honoured (a wait longer than `RetryPolicy.max_retry_after_s` is not: the
`ProblemError` is raised with its `retry_after_s`). Calls that are idempotent are also retried when no answer
came (a connection refused or reset, a timeout) and on 502 and 504 from a proxy, after an exponential backoff
with full jitter: the call may have been carried out, and sending it again must not do it twice. Which calls
are idempotent each client says; a GET always is, and so is a signed object the service keys by its signed
bytes (a transfer: the same object is the same tx id, and the ledger answers it again with its receipt).

Coverage. Each client method that sends one of a service's operations is marked with it (`operation`): the
method and the path template of the service's OpenAPI document. `operations` lists a client's, and
``tests/unit/test_sdk_coverage.py`` checks them against every service's document both ways: every operation has
a method, and every marked method sends the request it names.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple, Self, TypeVar

import httpx

from smartcity_sdk.errors import ProblemError

ANSWERED_RETRIES = frozenset({429, 503})
"""Answers saying the service took nothing and when to come back: retried for every call."""
PROXY_RETRIES = frozenset({502, 504})
"""A proxy's answers when the service did not answer it in time: retried for idempotent calls only."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a call is tried again (see the module's note on which calls)."""

    attempts: int = 4
    """Tries of one call in all (1: never retried)."""
    backoff_s: float = 0.25
    """The first backoff's ceiling; it doubles with each retry, up to `max_backoff_s` (full jitter: the wait is
    drawn uniformly below the ceiling, so many clients retrying at once spread out)."""
    max_backoff_s: float = 8.0
    max_retry_after_s: float = 30.0
    """The longest ``Retry-After`` waited for; a longer one raises at once."""

    def backoff(self, retry: int) -> float:
        """The wait before retry number `retry` (1, 2, ...) when the service said nothing of when."""
        return random.uniform(0, min(self.max_backoff_s, self.backoff_s * 2 ** (retry - 1)))


class Operation(NamedTuple):
    """An operation of a service's API, as its OpenAPI document names it."""

    method: str
    """``GET``, ``POST``, ..."""
    path: str
    """The path template, e.g. ``/v1/accounts/{wallet}/nonce``."""


OPERATION_ATTRIBUTE = "__sdk_operation__"
F = TypeVar("F", bound=Callable[..., Any])


def operation(method: str, path: str) -> Callable[[F], F]:
    """Mark a client method as the SDK's call of the operation `method` `path` (the path template of the
    service's OpenAPI document). Composite calls (a transfer that first reads its nonce, a transaction checked
    against a checkpoint) are not marked: the calls they are made of are."""

    def mark(function: F) -> F:
        setattr(function, OPERATION_ATTRIBUTE, Operation(method.upper(), path))
        return function

    return mark


def operations(client: type[ServiceClient]) -> dict[Operation, list[str]]:
    """The operations `client`'s methods are marked with (`operation`), each with the names of its methods."""
    found: dict[Operation, list[str]] = {}
    for name in sorted(dir(client)):
        marked = getattr(getattr(client, name), OPERATION_ATTRIBUTE, None)
        if isinstance(marked, Operation):
            found.setdefault(marked, []).append(name)
    return found


def json_object(**fields: Any) -> dict[str, Any]:
    """A request body of `fields`, those given as None left out (the platform refuses an optional member
    written as null)."""
    return {name: value for name, value in fields.items() if value is not None}


def retry_after_s(response: httpx.Response) -> float | None:
    """What the answer's ``Retry-After`` says to wait, in seconds (delay-seconds or an HTTP date), if anything."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def raise_for_problem(response: httpx.Response) -> None:
    """Raise `ProblemError` if `response` is an error (status 400 and above)."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {"type": "about:blank", "status": response.status_code, "detail": response.text[:500]}
    raise ProblemError(response.status_code, body, retry_after_s(response))


class ServiceClient:
    """A client of one platform service at `base_url`, its connections pooled; close it (or use it as a
    context manager) when done. `http` may be given instead, an ``httpx.Client`` whose base URL is the
    service's (the client then closes it)."""

    def __init__(
        self,
        base_url: str = "",
        *,
        timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s)
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        auth: httpx.Auth | None = None,
    ) -> httpx.Response:
        """The service's successful answer to one call, tried again as `RetryPolicy` and the module's note
        say; raises `ProblemError` for a refusal, or the last ``httpx.TransportError`` when no answer came.

        `params` whose value is None are left out."""
        query = json_object(**(params or {}))
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= self.retry.attempts
            try:
                response = self.http.request(method, path, json=json, params=query, auth=auth)
            except httpx.TransportError:
                if not idempotent or last:
                    raise
                self._sleep(self.retry.backoff(attempt))
                continue
            status = response.status_code
            retried = status in ANSWERED_RETRIES or (idempotent and status in PROXY_RETRIES)
            wait = retry_after_s(response)
            if not retried or last or (wait is not None and wait > self.retry.max_retry_after_s):
                raise_for_problem(response)
                return response
            self._sleep(self.retry.backoff(attempt) if wait is None else wait)
