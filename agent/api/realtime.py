"""GET /api/realtime: a WebSocket of job changes, encode progress and host samples.

Authentication: the token in the first message, `{"token": "..."}`, within
AUTH_TIMEOUT_SECONDS (a browser page should use this: a URL ends up in logs), or in the
query string `?token=` for clients that cannot do otherwise. The server then says `hello`.

Messages, JSON objects with a `type`:
- `job`: a job changed state (any writer: the engine, the API, `hb2r retry` from a shell);
- `progress`: a running encode moved (at most one a second per job);
- `system`: the host and the gate, every SYSTEM_SECONDS;
- `error`: before the server closes the socket (code 4401 for a refused token).

One feed task polls every POLL_SECONDS while anyone listens: jobs updated since its last
look (an index on `updated_at` answers that), and the dispatcher's in-memory progress. The
clients' tokens are checked again each poll: a logged-out or removed user is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from agent.api.context import ApiContext, context_of
from agent.api.views import job_view, running_view, system_view
from agent.auth import AuthError, Session, authenticate
from agent.store import jobs

AUTH_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 1.0
SYSTEM_SECONDS = 5.0
SEND_TIMEOUT_SECONDS = 2.0
CLOSE_UNAUTHORIZED = 4401


class Hub:
    """The connected sockets and the one task that feeds them."""

    def __init__(self, context: ApiContext) -> None:
        self.context = context
        self.clients: dict[web.WebSocketResponse, str] = {}  # socket -> its token
        self._task: asyncio.Task[None] | None = None
        self._last_stamp = ""
        self._states: dict[int, tuple[str, int]] = {}
        self._progress: dict[int, tuple[float, bool]] = {}

    def add(self, socket: web.WebSocketResponse, token: str) -> None:
        self.clients[socket] = token
        if self._task is None or self._task.done():
            self._last_stamp = _stamp(datetime.now(UTC))
            self._task = asyncio.create_task(self._feed(), name="realtime-feed")

    def remove(self, socket: web.WebSocketResponse) -> None:
        self.clients.pop(socket, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for socket in list(self.clients):
            await socket.close(code=1001, message=b"agent stopping")

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        next_system = loop.time()
        while self.clients:
            try:
                await self._check_tokens()
                messages = self._job_messages() + self._progress_messages()
                if loop.time() >= next_system:
                    next_system = loop.time() + SYSTEM_SECONDS
                    messages.append({"type": "system", "system": system_view(self.context)})
                if messages:
                    await self._send_all(messages)
            except Exception:
                self.context.log.exception("realtime feed failed")
            await asyncio.sleep(POLL_SECONDS)

    def _job_messages(self) -> list[dict[str, Any]]:
        changed = jobs.changed_since(self.context.state.connection, self._last_stamp)
        messages = []
        running = self.context.dispatcher.running
        for job in changed:
            self._last_stamp = max(self._last_stamp, job.updated_at)
            seen = (str(job.state), job.attempts)
            if self._states.get(job.id) == seen:
                continue  # a progress write, not a change of state
            self._states[job.id] = seen
            messages.append({"type": "job", "job": job_view(job, running=running.get(job.id))})
        if len(self._states) > 10_000:
            self._states.clear()
        return messages

    def _progress_messages(self) -> list[dict[str, Any]]:
        messages = []
        running = self.context.dispatcher.running
        for job_id, entry in running.items():
            if entry.encode is None:
                continue
            mark = (round(entry.progress, 2), entry.suspended)
            if self._progress.get(job_id) == mark:
                continue
            self._progress[job_id] = mark
            messages.append(
                {
                    "type": "progress",
                    "job_id": job_id,
                    "library": entry.job.library,
                    "path": entry.job.rel_path,
                    **running_view(entry),
                }
            )
        for job_id in set(self._progress) - set(running):
            del self._progress[job_id]
        return messages

    async def _check_tokens(self) -> None:
        for socket, token in list(self.clients.items()):
            try:
                _session(self.context, token)
            except AuthError as error:
                self.remove(socket)
                await _refuse(socket, str(error))

    async def _send_all(self, messages: list[dict[str, Any]]) -> None:
        texts = [json.dumps(message) for message in messages]
        for socket in list(self.clients):
            try:
                async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                    for text in texts:
                        await socket.send_str(text)
            except (TimeoutError, ConnectionError, RuntimeError):
                self.remove(socket)  # too slow or gone: it reconnects and reads /api/status
                with contextlib.suppress(Exception):
                    await socket.close(code=1011, message=b"too slow")


HUB = web.AppKey("realtime_hub", Hub)


async def realtime(request: web.Request) -> web.WebSocketResponse:
    context = context_of(request)
    socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=16 * 1024)
    await socket.prepare(request)
    token = request.query.get("token") or await _first_message_token(socket)
    if token is None:
        await _refuse(socket, 'send {"token": "..."} first')
        return socket
    try:
        session = _session(context, token)
    except AuthError as error:
        await _refuse(socket, str(error))
        return socket
    context.log.info("realtime connected", user=session.user, client=request.remote)
    await socket.send_json({"type": "hello", "user": {"name": session.user, "role": session.role}})
    hub = request.app[HUB]
    hub.add(socket, token)
    try:
        async for message in socket:
            if message.type == WSMsgType.TEXT and _is_ping(message.data):
                await socket.send_json({"type": "pong"})
    finally:
        hub.remove(socket)
    return socket


async def _first_message_token(socket: web.WebSocketResponse) -> str | None:
    try:
        message = await socket.receive(timeout=AUTH_TIMEOUT_SECONDS)
    except TimeoutError:
        return None
    if message.type != WSMsgType.TEXT:
        return None
    try:
        data = json.loads(message.data)
    except ValueError:
        return None
    token = data.get("token") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def _is_ping(text: str) -> bool:
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "ping"


def _session(context: ApiContext, token: str) -> Session:
    return authenticate(context.state.connection, secret=context.secret, token=token, now=datetime.now(UTC))


async def _refuse(socket: web.WebSocketResponse, message: str) -> None:
    with contextlib.suppress(Exception):
        await socket.send_json({"type": "error", "error": "unauthorized", "message": message})
        await socket.close(code=CLOSE_UNAUTHORIZED, message=b"unauthorized")


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
