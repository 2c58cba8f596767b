"""The services' HTTP protocol closes a connection that trickles its request headers (slowloris), and serves a
client that sends them at once; a body trickled past its deadline is a 408."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request

from services.common.embedded import free_port
from services.common.http import install_problem_handlers, read_json_body
from services.common.http_server import with_header_timeout

DEADLINE_S = 20.0  # a bound on the test, not a timing assertion


async def test_a_trickling_client_is_closed_and_a_prompt_one_served() -> None:
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", http=with_header_timeout(0.5)
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await writer.drain()
        closed = False
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            try:
                writer.write(b"a")  # one more byte of a header's value: the connection stays busy
                await writer.drain()
                data = await asyncio.wait_for(reader.read(100), 0.2)
            except TimeoutError:
                continue  # still open, nothing to read
            except ConnectionError:
                closed = True
                break
            closed = data == b""  # end of stream: the server closed it
            break
        assert closed, "the trickling connection was not closed"
        writer.close()

        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        response = await asyncio.wait_for(reader.read(1000), DEADLINE_S)
        assert response.startswith(b"HTTP/1.1 200") and b'"pong":"yes"' in response
        writer.close()
    finally:
        server.should_exit = True
        await serving


async def test_a_body_trickled_past_its_deadline_is_a_408_problem() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/echo")
    async def echo(request: Request) -> Any:
        return await read_json_body(request, 10_000, timeout_s=0.3)

    async def slowly() -> AsyncIterator[bytes]:
        yield b'{"a": '
        await asyncio.sleep(DEADLINE_S)  # never finishes within the deadline
        yield b"1}"

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        response = await asyncio.wait_for(client.post("/echo", content=slowly()), DEADLINE_S)
        assert response.status_code == 408 and response.json()["type"].endswith("body-timeout")
        assert (await client.post("/echo", json={"a": 1})).json() == {"a": 1}
