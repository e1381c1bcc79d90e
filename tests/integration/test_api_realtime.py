"""GET /api/realtime against the real app over real SQLite (aiohttp's test client on loopback).

The hub polls once a second, so every wait below is a deadline on a message, never a sleep;
the one paced loop is the progress writer of the rate test, which plays an encoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sqlite3
import time
from datetime import UTC, datetime

import pytest
from aiohttp import ClientWebSocketResponse, WSMsgType

from agent.api import realtime
from agent.auth import user_sync
from agent.config import load_config
from agent.dispatcher import Running
from agent.store import jobs
from agent.store.db import transaction
from tests.support.api import ADMIN_HASH, VIEWER_PASSWORD, Api, write_config
from tests.support.api_calls import expired_token
from tests.support.jobs import new_job
from tests.support.realtime import MESSAGE_DEADLINE, Message, connect, enqueue, hello, job_message, next_message


async def refusal(socket: ClientWebSocketResponse, *, deadline: float = MESSAGE_DEADLINE) -> tuple[Message, int]:
    """Read up to the server's close; return its error message and the close code."""
    error: Message | None = None
    async with asyncio.timeout(deadline):
        while True:
            message = await socket.receive()
            if message.type == WSMsgType.TEXT:
                data = json.loads(message.data)
                if data["type"] == "error":
                    error = data
                continue
            assert message.type == WSMsgType.CLOSE, message
            break
    assert error is not None, "closed without an error message"
    assert socket.close_code is not None
    return error, socket.close_code


class EncodeStandIn:
    """Stands in for a running HandBrakeCLI (`Running.encode`): the hub only asks whether there is one.
    A real encode's progress over the socket is covered by tests/e2e/test_api_e2e.py."""


# --- authentication ---


async def test_a_token_in_the_first_message_is_greeted_with_the_user(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)
    socket = await connect(api, token=token)
    greeting = await next_message(socket, lambda message: True)
    assert greeting == {"type": "hello", "user": {"name": "viewer", "role": "user"}}
    await socket.send_json({"type": "ping"})
    assert await next_message(socket, lambda message: message["type"] == "pong")
    await socket.close()


async def test_a_token_in_the_query_string_is_greeted_too(api: Api) -> None:
    token = await api.login("admin", "admin-password-1")
    socket = await connect(api, query_token=token)
    greeting = await next_message(socket, lambda message: True)
    assert greeting == {"type": "hello", "user": {"name": "admin", "role": "admin"}}
    await socket.close()


@pytest.mark.parametrize("where", ["message", "query"])
async def test_a_bad_token_is_refused_with_4401(api: Api, where: str) -> None:
    good = await api.login("viewer", VIEWER_PASSWORD)
    head, signature = good.rsplit(".", 1)
    forged = f"{head}.{signature[:5]}{'A' if signature[5] != 'A' else 'B'}{signature[6:]}"  # signature altered
    socket = await (connect(api, token=forged) if where == "message" else connect(api, query_token=forged))
    error, code = await refusal(socket)
    assert code == realtime.CLOSE_UNAUTHORIZED == 4401
    assert error["error"] == "unauthorized"
    assert "not valid" in error["message"]


async def test_an_expired_token_is_refused_with_4401(api: Api) -> None:
    socket = await connect(api, token=expired_token(api))
    error, code = await refusal(socket)
    assert code == 4401
    assert "expired" in error["message"]


async def test_no_first_message_within_the_timeout_is_refused_with_4401(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(realtime, "AUTH_TIMEOUT_SECONDS", 0.3)
    socket = await connect(api)
    began = time.monotonic()
    error, code = await refusal(socket)
    assert code == 4401
    assert "token" in error["message"]
    assert time.monotonic() - began < 3.0


async def test_a_first_message_without_a_token_is_refused_with_4401(api: Api) -> None:
    socket = await connect(api)
    await socket.send_str("hello, is it me you're looking for")
    _, code = await refusal(socket)
    assert code == 4401


async def test_logout_cuts_the_socket_off(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)
    socket = await hello(api, token)
    other = await hello(api)  # another login of the same user stays connected
    response = await api.client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    error, code = await refusal(socket, deadline=3.0)
    assert code == 4401
    assert "logged out" in error["message"]
    job = enqueue(api, "still listening")
    assert await next_message(other, job_message(job.id))
    await other.close()


async def test_removing_the_user_cuts_the_socket_off(api: Api) -> None:
    socket = await hello(api)
    admin = await hello(api, await api.login("admin", "admin-password-1"))
    # What a config reload does: the new config no longer declares viewer.
    root = api.context.state.config.paths.archive.parent
    config = load_config(
        write_config(root, users=f'  - {{name: admin, role: admin, password_hash: "{ADMIN_HASH}"}}\n')
    ).config
    api.context.state.config = config
    user_sync.sync_users(api.context.state.store, config, now=datetime.now(UTC), log=api.context.log)
    error, code = await refusal(socket, deadline=3.0)
    assert code == 4401
    assert "no longer valid" in error["message"]
    assert not admin.closed
    await admin.close()


# --- job changes ---


async def test_job_state_changes_arrive_and_progress_writes_do_not(api: Api) -> None:
    connection = api.context.state.store.database
    socket = await hello(api)
    job = enqueue(api, "a")
    queued = await next_message(socket, job_message(job.id))
    assert queued["job"]["state"] == "queued"
    assert queued["job"]["path"] == "a.mkv" and queued["job"]["library"] == "tv"

    jobs.mark_running(connection, job.id, now=datetime.now(UTC))
    await next_message(socket, job_message(job.id, "running"))

    jobs.record_progress(connection, job.id, progress=42.0, now=datetime.now(UTC))
    marker = enqueue(api, "marker")  # a later change: once it is seen, the progress write was seen too
    seen = await next_message(socket, lambda message: message["type"] == "job")
    assert seen["job"]["id"] == marker.id, f"a progress write made a job message: {seen}"

    jobs.mark_done(connection, job.id, now=datetime.now(UTC))
    done = await next_message(socket, job_message(job.id))
    assert done["job"]["state"] == "done"
    assert done["job"]["progress"] == 100
    await socket.close()


async def test_a_progress_write_to_a_job_running_before_the_socket_opened_makes_no_job_message(api: Api) -> None:
    connection = api.context.state.store.database
    job = enqueue(api, "early")
    jobs.mark_running(connection, job.id, now=datetime.now(UTC))
    socket = await hello(api)
    jobs.record_progress(connection, job.id, progress=10.0, now=datetime.now(UTC))
    marker = enqueue(api, "marker")
    seen = await next_message(socket, lambda message: message["type"] == "job")
    assert seen["job"]["id"] == marker.id, f"a progress write made a job message: {seen}"
    jobs.mark_failed(
        connection,
        job.id,
        error="HandBrakeCLI exited 3",
        stderr_tail=["boom"],
        retry=api.context.state.config.retry,
        now=datetime.now(UTC),
    )
    failed = await next_message(socket, job_message(job.id))
    assert failed["job"]["state"] in ("failed", "dead")
    assert failed["job"]["error"] == "HandBrakeCLI exited 3"
    await socket.close()


async def test_a_change_made_by_another_connection_arrives(api: Api) -> None:
    """`hb2r retry` from a shell writes through its own connection to the same database."""
    socket = await hello(api)
    job = enqueue(api, "dead one")
    await next_message(socket, job_message(job.id, "queued"))
    database = api.context.state.config.paths.state_dir / "hb2r.db"
    other = sqlite3.connect(database, isolation_level=None)
    try:
        jobs.cancel(other, job.id, now=datetime.now(UTC))
    finally:
        other.close()
    await next_message(socket, job_message(job.id, "cancelled"))
    await socket.close()


# --- progress of running encodes ---


def start_encode(api: Api, name: str) -> Running:
    job = jobs.mark_running(api.context.state.store.database, enqueue(api, name).id, now=datetime.now(UTC))
    entry = Running(job)
    entry.encode = EncodeStandIn()  # type: ignore[assignment]  # see EncodeStandIn
    api.context.dispatcher.running[job.id] = entry
    return entry


async def test_progress_of_a_running_encode_arrives(api: Api) -> None:
    socket = await hello(api)
    entry = start_encode(api, "moving")
    try:
        entry.progress, entry.fps, entry.eta_seconds = 12.345, 87.5, 40
        message = await next_message(socket, lambda message: message["type"] == "progress")
        assert message == {
            "type": "progress",
            "job_id": entry.job.id,
            "library": "tv",
            "path": "moving.mkv",
            "progress": 12.35,
            "fps": 87.5,
            "eta_seconds": 40,
            "suspended": False,
        }
        entry.progress = 50.0
        message = await next_message(socket, lambda message: message["type"] == "progress")
        assert message["progress"] == 50.0
    finally:
        api.context.dispatcher.running.pop(entry.job.id, None)
    await socket.close()


async def test_progress_arrives_at_most_once_a_second_per_job(api: Api) -> None:
    socket = await hello(api)
    entry = start_encode(api, "busy")
    times: list[float] = []

    async def encoder() -> None:
        for step in range(1, 31):  # the encoder's pace: a new figure every 0.1 s for 3 s
            entry.progress = step * 3.0
            await asyncio.sleep(0.1)

    playing = asyncio.create_task(encoder())
    try:
        began = time.monotonic()
        while not playing.done():
            remaining = began + 3.0 - time.monotonic()
            if remaining <= 0:
                break
            try:
                await next_message(socket, lambda message: message["type"] == "progress", deadline=remaining)
            except TimeoutError:
                break
            times.append(time.monotonic())
    finally:
        playing.cancel()
        api.context.dispatcher.running.pop(entry.job.id, None)
    assert 2 <= len(times) <= 4, times
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 0.8, gaps
    await socket.close()


# --- host samples ---


async def test_a_system_message_arrives_within_six_seconds(api: Api) -> None:
    socket = await hello(api)
    message = await next_message(socket, lambda message: message["type"] == "system", deadline=6.0)
    system = message["system"]
    assert 0 <= system["cpu"]["percent"] <= 100
    assert system["memory"]["available_bytes"] > 0
    assert system["archive"]["free_bytes"] > 0
    assert system["gate"]["admitting"] in (True, False)
    # A second client, joining a feed already running, gets its own within a system period too.
    later = await hello(api)
    assert await next_message(later, lambda message: message["type"] == "system", deadline=6.0)
    await socket.close()
    await later.close()


# --- status hints ---


async def test_a_pause_and_a_resume_each_send_a_status_hint_and_a_quiet_feed_sends_none(api: Api) -> None:
    socket = await hello(api)
    admin = await api.admin()
    assert (await api.client.post("/api/libraries/tv/pause", headers=admin)).status == 200
    assert await next_message(socket, lambda message: message["type"] == "status") == {"type": "status"}
    assert (await api.client.post("/api/libraries/tv/resume", headers=admin)).status == 200
    assert await next_message(socket, lambda message: message["type"] == "status") == {"type": "status"}
    # No other hint follows while nothing else changes: the next message (system ones aside) is this job's.
    marker = enqueue(api, "marker")
    seen = await next_message(socket, lambda message: message["type"] not in ("system", "progress"))
    assert seen["type"] == "job" and seen["job"]["id"] == marker.id, seen
    await socket.close()


async def test_a_config_reload_sends_a_status_hint(api: Api) -> None:
    socket = await hello(api)
    api.context.state.config_generation += 1  # what an applied reload does, among other things
    assert await next_message(socket, lambda message: message["type"] == "status") == {"type": "status"}
    await socket.close()


# --- clients that stop reading ---


async def stuck_client(api: Api, token: str) -> ClientWebSocketResponse:
    """A client that, once greeted, reads nothing more: it never answers the server's close."""
    socket = await api.client.ws_connect("/api/realtime", autoclose=False, autoping=False)
    await socket.send_json({"token": token})
    assert (await next_message(socket, lambda message: True))["type"] == "hello"
    return socket


async def test_a_cut_off_client_that_does_not_answer_the_close_holds_up_no_one(api: Api) -> None:
    token = await api.login("viewer", VIEWER_PASSWORD)
    stuck = await stuck_client(api, token)
    other = await hello(api, await api.login("admin", "admin-password-1"))
    response = await api.client.post("/api/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    job = enqueue(api, "meanwhile")
    await next_message(other, job_message(job.id, "queued"), deadline=4.0)
    error, code = await refusal(stuck)
    assert code == 4401 and error["error"] == "unauthorized"
    await other.close()
    await stuck.close()


async def test_stopping_waits_little_for_a_client_that_does_not_answer(api: Api) -> None:
    stuck = await stuck_client(api, await api.login("viewer", VIEWER_PASSWORD))
    began = time.monotonic()
    await api.client.server.app[realtime.HUB].close()
    assert time.monotonic() - began < 4.0
    await stuck.close()


def enqueue_many(api: Api, count: int, *, path_length: int = 0, prefix: str = "many") -> set[int]:
    """Queue count jobs in one transaction with one stamp, as a reconcile pass does; return their ids."""
    connection = api.context.state.store.database
    now = datetime.now(UTC)
    padding = "x" * path_length
    ids = set()
    with transaction(connection):
        for number in range(count):
            rel_path = f"{prefix}/{padding}{number:05}.mkv"
            job = jobs.enqueue(
                connection, **new_job(rel_path, fingerprint=f"fingerprint-{number}", preset_hash="preset-hash", now=now)
            )
            assert job is not None
            ids.add(job.id)
    return ids


async def test_every_job_of_a_pass_that_queues_more_than_a_batch_arrives(api: Api) -> None:
    socket = await hello(api)
    ids = enqueue_many(api, 1200)
    seen: set[int] = set()
    async with asyncio.timeout(10.0):
        while seen != ids:
            message = await next_message(socket, lambda message: message["type"] == "job")
            seen.add(message["job"]["id"])
    await socket.close()


async def test_a_client_that_stops_reading_is_dropped_and_holds_up_no_one(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Quicker polls and shorter patience than in service: the same logic, sooner.
    monkeypatch.setattr(realtime, "POLL_SECONDS", 0.2)
    monkeypatch.setattr(realtime, "SEND_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(realtime, "CLOSE_TIMEOUT_SECONDS", 0.5)
    stuck_token = await api.login("viewer", VIEWER_PASSWORD)
    stuck = await stuck_client(api, stuck_token)
    reader = await hello(api, await api.login("admin", "admin-password-1"))

    async def read_all() -> None:
        while True:
            message = await reader.receive()
            assert message.type == WSMsgType.TEXT, message

    reading = asyncio.create_task(read_all())
    hub = api.client.server.app[realtime.HUB]
    try:
        # About 3 MB a poll: more than loopback buffers hold for a client that reads nothing.
        for batch in range(8):
            enqueue_many(api, 500, path_length=3000, prefix=f"batch{batch}")
        async with asyncio.timeout(30.0):
            while stuck_token in hub.clients.values():
                await asyncio.sleep(0.1)  # polling the hub's client list, with the deadline above
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading
    marker = enqueue(api, "after the flood")
    await next_message(reader, job_message(marker.id), deadline=3.0)
    await reader.close()
    await stuck.close()
