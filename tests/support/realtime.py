"""The live feed (/api/realtime) as a client sees it: connect, be greeted, wait for the next message
that matches, and queue a job for it to report."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import ClientWebSocketResponse, WSMsgType

from agent.store import jobs
from tests.support.api import VIEWER_PASSWORD, Api
from tests.support.jobs import new_job

Message = dict[str, Any]


MESSAGE_DEADLINE = 5.0  # the hub polls every second: a change shows within about one poll


async def connect(api: Api, *, token: str | None = None, query_token: str | None = None) -> ClientWebSocketResponse:
    """Open the socket; send `token` as the first message if given."""
    path = "/api/realtime" if query_token is None else f"/api/realtime?token={query_token}"
    socket = await api.client.ws_connect(path)
    if token is not None:
        await socket.send_json({"token": token})
    return socket


async def hello(api: Api, token: str | None = None) -> ClientWebSocketResponse:
    """Return a socket authenticated as viewer (or with token), its hello read."""
    token = token or await api.login("viewer", VIEWER_PASSWORD)
    socket = await connect(api, token=token)
    greeting = await next_message(socket, lambda message: True)
    assert greeting["type"] == "hello", greeting
    return socket


async def next_message(
    socket: ClientWebSocketResponse, want: Callable[[Message], bool], *, deadline: float = MESSAGE_DEADLINE
) -> Message:
    """Return the next message that want() accepts; fail if the socket closes or the deadline passes."""
    async with asyncio.timeout(deadline):
        while True:
            message = await socket.receive()
            if message.type != WSMsgType.TEXT:
                raise AssertionError(f"socket ended ({message.type.name}, {message.data!r}) before the message came")
            data: Message = json.loads(message.data)
            if want(data):
                return data


def job_message(job_id: int, state: str | None = None) -> Callable[[Message], bool]:
    def want(message: Message) -> bool:
        if message["type"] != "job" or message["job"]["id"] != job_id:
            return False
        return state is None or message["job"]["state"] == state

    return want


def enqueue(api: Api, name: str) -> jobs.Job:
    job = jobs.enqueue(
        api.context.state.store.database,
        **new_job(f"{name}.mkv", fingerprint=f"fingerprint-{name}", preset_hash="preset-hash", now=datetime.now(UTC)),
    )
    assert job is not None
    return job


