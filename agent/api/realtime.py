"""GET /api/realtime: a WebSocket of job changes, encode progress and host samples.

Authentication: the token in the first message, `{"token": "..."}`, within
AUTH_TIMEOUT_SECONDS (a browser page should use this: a URL ends up in logs), or in the
query string `?token=` for clients that cannot do otherwise. The server then says `hello`.

Messages, JSON objects with a `type`:
- `job`: a job changed state (any writer: the engine, the API, `hb2r retry` from a shell);
- `progress`: a running encode moved (at most one a second per job);
- `system`: the host and the gate, every SYSTEM_SECONDS;
- `status`: something /api/status shows changed without a job changing state (a config
  reload, a library paused, resumed, broken or mended, files waiting to be stable): a
  client that shows /api/status reads it again (the status page does, instead of polling);
- `error`: before the server closes the socket (code 4401 for a refused token).

One feed task polls every POLL_SECONDS while anyone listens: jobs changed since its last
look, and the dispatcher's in-memory progress. "Since" is a change number that triggers
give every insert and update of a job (indexed), not `updated_at`: the wall clock may step
back, and changes stamped before the last one seen would never be sent. The
clients' tokens are checked again each poll: a logged-out or removed user is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from agent.api.context import ApiContext, client_of, context_of
from agent.api.views import job_view, running_view, system_view
from agent.auth.tokens import AuthError, Session, authenticate
from agent.store import StoreError, jobs

AUTH_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 1.0
SYSTEM_SECONDS = 5.0
SEND_TIMEOUT_SECONDS = 2.0
CLOSE_TIMEOUT_SECONDS = 2.0
CHANGES_PER_POLL = 500
CLOSE_UNAUTHORIZED = 4401


class Hub:
    """The connected sockets and the one task that feeds them.

    The feed never waits on one client for long: sends go to all clients at once, each within
    SEND_TIMEOUT_SECONDS, and a client dropped (too slow, logged out) is closed by a task of its
    own, its connection cut if it does not take the close within CLOSE_TIMEOUT_SECONDS.
    """

    def __init__(self, context: ApiContext) -> None:
        self.context = context
        self.clients: dict[web.WebSocketResponse, str] = {}  # socket -> its token
        self._transports: dict[web.WebSocketResponse, asyncio.BaseTransport | None] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._last_change = 0
        self._states: dict[int, tuple[str, int]] = {}  # running jobs: id -> (state, attempts) last seen
        self._progress: dict[int, tuple[float, bool]] = {}
        self._status: tuple[object, ...] = ()

    def add(self, socket: web.WebSocketResponse, token: str, transport: asyncio.BaseTransport | None = None) -> None:
        self.clients[socket] = token
        self._transports[socket] = transport
        if self._task is None or self._task.done():
            # The cursor and the running jobs are read together, with no await between: a progress
            # write to a job already running is then known for what it is.
            self._seed()
            self._status = self._status_key()
            self._task = asyncio.create_task(self._feed(), name="realtime-feed")

    def remove(self, socket: web.WebSocketResponse) -> None:
        self.clients.pop(socket, None)
        self._transports.pop(socket, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for socket in list(self.clients):
            self._drop(socket, code=1001, reason=b"agent stopping")
        if self._closing:
            await asyncio.wait(set(self._closing))  # each within CLOSE_TIMEOUT_SECONDS

    def _seed(self) -> None:
        store = self.context.state.store
        try:
            self._last_change = store.last_change()
            running = store.list_jobs(state=jobs.JobState.RUNNING)
        except StoreError:
            self.context.log.exception("realtime feed cannot read the running jobs")
            running = []
        self._states = {job.id: (str(job.state), job.attempts) for job in running}
        self._progress.clear()  # a new feed tells its listeners where each encode is

    async def _feed(self) -> None:
        loop = asyncio.get_running_loop()
        next_system = loop.time()
        while self.clients:
            try:
                self._check_tokens()
                messages = self._job_messages() + self._progress_messages() + self._status_messages()
                if loop.time() >= next_system:
                    next_system = loop.time() + SYSTEM_SECONDS
                    messages.append({"type": "system", "system": system_view(self.context)})
                if messages:
                    await self._send_all(messages)
            except Exception:
                self.context.log.exception("realtime feed failed")
            await asyncio.sleep(POLL_SECONDS)

    def _job_messages(self) -> list[dict[str, Any]]:
        messages = []
        running = self.context.dispatcher.running
        for change, job in self.context.state.store.changed_after(self._last_change, limit=CHANGES_PER_POLL):
            self._last_change = change
            seen = (str(job.state), job.attempts)
            if self._states.get(job.id) == seen:
                continue  # a progress write, not a change of state
            # Only a running job's row changes without a change of state (progress writes): only
            # running jobs need remembering, and a job seen in any other state is news.
            if job.state is jobs.JobState.RUNNING:
                self._states[job.id] = seen
            else:
                self._states.pop(job.id, None)
            messages.append({"type": "job", "job": job_view(job, running=running.get(job.id))})
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

    def _status_messages(self) -> list[dict[str, Any]]:
        key = self._status_key()
        if key == self._status:
            return []
        self._status = key
        return [{"type": "status"}]

    def _status_key(self) -> tuple[object, ...]:
        """Return what /api/status shows that can change while no job does (memory only: cheap each poll)."""
        state = self.context.state
        return (
            state.config_generation,
            state.reload_error,
            tuple(sorted(state.broken_libraries.items())),
            tuple(sorted(state.paused_libraries.items())),
            tuple(sorted((name, hold.reason) for name, hold in state.held_libraries.items())),
            None if state.last_pass is None else tuple(sorted(state.last_pass.waiting.items())),
        )

    def _check_tokens(self) -> None:
        for socket, token in list(self.clients.items()):
            try:
                _session(self.context, token)
            except AuthError as error:
                self._drop(socket, code=CLOSE_UNAUTHORIZED, reason=b"unauthorized", error=_refusal(str(error)))

    async def _send_all(self, messages: list[dict[str, Any]]) -> None:
        texts = [json.dumps(message) for message in messages]
        await asyncio.gather(*(self._send(socket, texts) for socket in list(self.clients)))

    async def _send(self, socket: web.WebSocketResponse, texts: list[str]) -> None:
        try:
            async with asyncio.timeout(SEND_TIMEOUT_SECONDS):
                for text in texts:
                    await socket.send_str(text)
        except Exception:  # too slow or gone: it reconnects and reads /api/status
            self._drop(socket, code=1011, reason=b"too slow")

    def _drop(
        self, socket: web.WebSocketResponse, *, code: int, reason: bytes, error: dict[str, Any] | None = None
    ) -> None:
        """Stop feeding socket; close it in a task of its own (the feed must not wait on it)."""
        transport = self._transports.get(socket)
        self.remove(socket)
        task = asyncio.create_task(_close(socket, transport, code=code, reason=reason, error=error))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


HUB = web.AppKey("realtime_hub", Hub)


async def realtime(request: web.Request) -> web.WebSocketResponse:
    context = context_of(request)
    socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=16 * 1024)
    await socket.prepare(request)
    token = request.query.get("token") or await _first_message_token(socket)
    if token is None:
        await _refuse(socket, request.transport, 'send {"token": "..."} first')
        return socket
    try:
        session = _session(context, token)
    except AuthError as error:
        await _refuse(socket, request.transport, str(error))
        return socket
    context.log.info("realtime connected", user=session.user, client=client_of(request))
    await socket.send_json({"type": "hello", "user": {"name": session.user, "role": session.role}})
    hub = request.app[HUB]
    hub.add(socket, token, request.transport)
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
    return authenticate(context.state.store, secret=context.secret, token=token, now=datetime.now(UTC))


def _refusal(message: str) -> dict[str, Any]:
    return {"type": "error", "error": "unauthorized", "message": message}


async def _refuse(socket: web.WebSocketResponse, transport: asyncio.BaseTransport | None, message: str) -> None:
    await _close(socket, transport, code=CLOSE_UNAUTHORIZED, reason=b"unauthorized", error=_refusal(message))


async def _close(
    socket: web.WebSocketResponse,
    transport: asyncio.BaseTransport | None,
    *,
    code: int,
    reason: bytes,
    error: dict[str, Any] | None = None,
) -> None:
    """Send error (if any) and close socket with code; cut the connection if that cannot be done
    within CLOSE_TIMEOUT_SECONDS (a client that reads nothing: its send buffer is full)."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_SECONDS):
            if error is not None:
                await socket.send_json(error)
            await socket.close(code=code, message=reason)
    except Exception:
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()  # close() would wait for the buffer to drain: forever, for this client
