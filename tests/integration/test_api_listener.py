"""The HTTP service's listener on a real loopback socket: idle and slow clients are timed out,
and connections over the cap get a prompt 503 instead of a descriptor each.

The agent is served by the production `serve()` with a small cap and a short idle timeout,
so that what takes 15 s in production takes a second here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from agent.api import params
from agent.api.app import serve
from agent.api.context import ApiContext
from tests.support.api import ADMIN_PASSWORD, build_context, write_config
from tests.support.waiting import wait_for_async

CAP = 3
IDLE_SECONDS = 1.0


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[ApiContext, web.AppRunner, str, int]]:
    context = build_context(write_config(tmp_path))
    runner = await serve(context, max_connections=CAP, idle_timeout=IDLE_SECONDS)
    host, port = context.state.config.server.listen.rsplit(":", 1)
    try:
        yield context, runner, host, int(port)
    finally:
        await runner.cleanup()
        context.checker.close()
        context.state.store.database.close()


async def read_to_end(reader: asyncio.StreamReader, *, deadline: float) -> bytes:
    """Return what the server sent until it closed the connection; fail if it keeps it open."""
    return await asyncio.wait_for(reader.read(), timeout=deadline)


async def test_over_the_cap_a_connection_gets_a_503_and_idle_ones_are_closed(
    served: tuple[ApiContext, web.AppRunner, str, int],
) -> None:
    _, runner, host, port = served
    assert runner.server is not None
    idle = []
    for count in range(1, CAP + 1):
        idle.append(await asyncio.open_connection(host, port))
        await wait_for_async(
            lambda count=count: len(runner.server.connections) == count,
            what=f"{count} connections held",
            deadline=10.0,
            interval=0.05,
        )

    reader, writer = await asyncio.open_connection(host, port)
    answer = await read_to_end(reader, deadline=5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert b"Retry-After: " in answer and b"too many open connections" in answer

    started = time.monotonic()
    for idle_reader, _ in idle:
        assert await read_to_end(idle_reader, deadline=IDLE_SECONDS + 5) == b""  # closed, nothing sent
    assert time.monotonic() - started < IDLE_SECONDS + 5
    for _, idle_writer in idle:
        idle_writer.close()

    async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}/health") as response:
        assert response.status == 200


async def test_a_client_that_never_finishes_its_headers_is_cut_off(
    served: tuple[ApiContext, web.AppRunner, str, int],
) -> None:
    _, _, host, port = served
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # ... and the blank line never comes
    started = time.monotonic()
    for _ in range(10):  # a byte now and then does not keep it open
        await asyncio.sleep(IDLE_SECONDS / 5)
        if writer.is_closing() or reader.at_eof():
            break
        try:
            writer.write(b"X")
            await writer.drain()
        except ConnectionError:
            break
    assert await read_to_end(reader, deadline=IDLE_SECONDS + 5) == b""
    assert time.monotonic() - started < IDLE_SECONDS + 5
    writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_a_408(
    served: tuple[ApiContext, web.AppRunner, str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(params, "BODY_TIMEOUT_SECONDS", 0.5)
    _, _, host, port = served
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"username": '
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    assert head.startswith(b"HTTP/1.1 408 "), head
    writer.close()


async def test_an_open_websocket_is_not_taken_for_an_idle_connection(
    served: tuple[ApiContext, web.AppRunner, str, int],
) -> None:
    _, _, host, port = served
    base = f"http://{host}:{port}"
    async with aiohttp.ClientSession() as session:
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        async with session.post(f"{base}/api/auth/login", json=login) as response:
            token = (await response.json())["token"]
        async with session.ws_connect(f"{base}/api/realtime", autoping=True) as socket:
            await socket.send_json({"token": token})
            assert (await socket.receive_json(timeout=5))["type"] == "hello"
            await asyncio.sleep(IDLE_SECONDS * 2.5)  # quiet for longer than the idle timeout
            await socket.send_json({"type": "ping"})
            while (await socket.receive_json(timeout=5))["type"] != "pong":
                pass
            assert not socket.closed
