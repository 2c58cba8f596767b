"""uvicorn's HTTP protocol (httptools), with a deadline on reading a request's headers.

uvicorn closes a keep-alive connection that stays idle, but not one that sends its request's headers a byte
at a time: any data pushes its keep-alive timer back, and a fresh connection has none, so a few hundred such
sockets hold the server's connections open for as long as their senders like (the slowloris attack). This
protocol closes a connection whose request headers are not complete `header_timeout_s` after the connection
opened or the previous response ended (``HTTP_HEADER_TIMEOUT_S``, see `with_header_timeout`). uvicorn has no setting for it, hence this small subclass.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes a connection whose request headers are late."""

    header_timeout_s = 10.0
    _headers_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline

    def _arm(self) -> None:
        self._disarm()
        self._headers_due = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None

    def _headers_late(self) -> None:
        self._headers_due = None
        if not self.transport.is_closing():
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class (what uvicorn's ``http=`` takes) with a deadline of `seconds` on headers."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": seconds})
