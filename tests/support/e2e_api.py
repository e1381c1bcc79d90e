"""Talking to a real `hb2r run` process over its HTTP API, as a browser or a scraper would.

Users admin and viewer (bcrypt rounds 4, so logins are quick), a config with the API on a given port,
a small HTTP client, the WebSocket's next matching message, and dropping a finished file in one step.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp

from agent.passwords import hash_password
from tests.support.agent_process import AgentProcess
from tests.support.configs import write_config
from tests.support.waiting import wait_for_async

Message = dict[str, Any]

ADMIN_PASSWORD = "admin-password-1"
VIEWER_PASSWORD = "viewer-password-2"
ADMIN = f'  - {{name: admin, role: admin, password_hash: "{hash_password(ADMIN_PASSWORD, rounds=4)}"}}\n'
VIEWER = f'  - {{name: viewer, role: user, password_hash: "{hash_password(VIEWER_PASSWORD, rounds=4)}"}}\n'


def api_config(root: Path, *, port: int, users: str = ADMIN + VIEWER, max_jobs: str = "1") -> Path:
    """A config with users admin and viewer and the API on port."""
    return write_config(root, port=port, users=users, max_jobs=max_jobs)


class Client:
    """The agent's HTTP API at 127.0.0.1:port."""

    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http = http
        self.base = f"http://127.0.0.1:{port}"

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        """Return (status, JSON or text); status 0 if nothing answers (yet)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            async with self.http.get(self.base + path, headers=headers) as response:
                text = await response.text()
                if response.content_type == "application/json":
                    return response.status, json.loads(text)
                return response.status, text
        except aiohttp.ClientConnectionError:
            return 0, None

    async def login(self, username: str, password: str) -> str:
        async with self.http.post(
            self.base + "/api/auth/login", json={"username": username, "password": password}
        ) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["token"])

    async def login_status(self, username: str, password: str) -> int:
        async with self.http.post(
            self.base + "/api/auth/login", json={"username": username, "password": password}
        ) as response:
            return response.status

    async def healthy(self, agent: AgentProcess) -> dict[str, Any]:
        async def answer() -> dict[str, Any] | None:
            status, body = await self.get("/health")
            return body if status == 200 else None

        return await wait_for_async(answer, what="GET /health 200", agent=agent, deadline=60.0)


async def next_message(
    socket: aiohttp.ClientWebSocketResponse, want: Callable[[Message], bool], *, deadline: float
) -> Message:
    async with asyncio.timeout(deadline):
        while True:
            message = await socket.receive()
            if message.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket ended ({message.type.name}, {message.data!r})")
            data: Message = json.loads(message.data)
            if want(data):
                return data


def drop(clip: Path, target: Path) -> None:
    """Put a copy of clip at target in one step, as a finished download appears."""
    staging = target.parent.parent / f".staging-{target.name}"
    staging.write_bytes(clip.read_bytes())
    os.replace(staging, target)
