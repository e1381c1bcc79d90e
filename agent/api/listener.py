"""The HTTP service's listening socket: a cap on open connections, and no idle client kept.

aiohttp alone accepts every connection that arrives and keeps one that sends nothing for an
hour (its keep-alive default). A few hundred such sockets take every file descriptor the
agent has (see agent/descriptors.py). So:

- IDLE_TIMEOUT_SECONDS: a connection with no request in progress is closed after this long,
  whether it never sent a request or is between requests (keep-alive). aiohttp starts the
  timer at connect and a request that is still arriving does not reset it, so it is the
  header-read timeout too. A request body must arrive within BODY_TIMEOUT_SECONDS
  (agent/api/params.py). An open WebSocket is a request in progress: it is not cut.
- At most `cap` connections are open at once. Over it, a new connection is answered with a
  short 503 and `Retry-After`, and closed at once: its descriptor is back straight away and
  the client knows why. Refusals are logged once a minute with a count.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from agent.descriptors import ACCEPT_BACKLOG, OncePerInterval

IDLE_TIMEOUT_SECONDS = 15.0
BODY_TIMEOUT_SECONDS = 15.0
RETRY_AFTER_SECONDS = 5


def _busy_answer() -> bytes:
    body = json.dumps(
        {"error": "unavailable", "message": "too many open connections; try again shortly"}
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Retry-After: {RETRY_AFTER_SECONDS}\r\n"
        "Connection: close\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


BUSY_ANSWER = _busy_answer()


class _Refused(asyncio.Protocol):
    """A connection over the cap: answer 503 and close (the write is flushed before the close)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)  # noqa: S101 - a TCP transport
        transport.write(BUSY_ANSWER)
        transport.close()


class CappedSite(web.BaseSite):
    """A TCP site that serves at most `cap` connections at once (see the module docstring)."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, *, cap: int, log: Any) -> None:
        super().__init__(runner, backlog=ACCEPT_BACKLOG)
        self._host = host
        self._port = port
        self.cap = cap
        self._refusals = OncePerInterval(log)
        self._pending = 0  # protocols handed out whose connection_made has not run yet

    @property
    def name(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self._host, self._port, backlog=self._backlog, reuse_address=True
        )

    def _protocol(self) -> asyncio.BaseProtocol:
        server = self._runner.server
        assert server is not None  # noqa: S101 - set by runner.setup(), before any site starts
        open_now = len(server.connections) + self._pending
        if open_now >= self.cap:
            self._refusals.report("HTTP connection refused: too many open", cap=self.cap)
            return _Refused()
        # asyncio calls connection_made in a later callback: count the connection until then.
        self._pending += 1
        asyncio.get_running_loop().call_soon(self._connected)
        return server()

    def _connected(self) -> None:
        self._pending -= 1
