"""The HTTP API of a real `hb2r run` process: real HandBrakeCLI, clips made with ffmpeg, loopback only.

Each test writes a config with users and `server.listen` on a free loopback port, starts the
agent, and talks to it as a browser or a scraper would: /health, login, the WebSocket,
/api/status, /metrics. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from test_run import DEADLINE, Agent, free_port, make_clip, write_config

from agent.passwords import hash_password

T = TypeVar("T")
Message = dict[str, Any]

ADMIN_PASSWORD = "admin-password-1"
VIEWER_PASSWORD = "viewer-password-2"
ADMIN = f'  - {{name: admin, role: admin, password_hash: "{hash_password(ADMIN_PASSWORD, rounds=4)}"}}\n'
VIEWER = f'  - {{name: viewer, role: user, password_hash: "{hash_password(VIEWER_PASSWORD, rounds=4)}"}}\n'


def api_config(root: Path, *, port: int, users: str = ADMIN + VIEWER, max_jobs: str = "1") -> Path:
    """A config with users admin and viewer and the API on port."""
    return write_config(root, port=port, users=users, max_jobs=max_jobs)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Thirty seconds of 640x360: HandBrakeCLI works on it for a few seconds."""
    return make_clip(tmp_path_factory.mktemp("clips") / "long.mkv", seconds=30, size="640x360")


def log_tail(agent: Agent) -> str:
    return agent.log_path.read_text(errors="replace")[-3000:]


async def poll(check: Callable[[], Awaitable[T | None]], *, what: str, agent: Agent, deadline: float = DEADLINE) -> T:
    """Return check()'s first true value; fail if the agent exits or the deadline passes."""
    end = time.monotonic() + deadline
    while True:
        value = await check()
        if value:
            return value
        if agent.process.poll() is not None:
            raise AssertionError(f"agent exited ({agent.process.returncode}) waiting for {what}:\n{log_tail(agent)}")
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}:\n{log_tail(agent)}")
        await asyncio.sleep(0.2)


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

    async def healthy(self, agent: Agent) -> dict[str, Any]:
        async def answer() -> dict[str, Any] | None:
            status, body = await self.get("/health")
            return body if status == 200 else None

        return await poll(answer, what="GET /health 200", agent=agent, deadline=60.0)


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


async def test_an_encode_is_seen_live_over_the_websocket_and_then_in_status_and_metrics(
    tmp_path: Path, long_clip: Path, agents: Callable[[Path], Agent]
) -> None:
    port = free_port()
    agent = agents(api_config(tmp_path, port=port))
    async with aiohttp.ClientSession() as http:
        api = Client(http, port)
        await api.healthy(agent)
        token = await api.login("viewer", VIEWER_PASSWORD)
        async with http.ws_connect(f"{api.base}/api/realtime") as socket:
            await socket.send_json({"token": token})
            hello = await next_message(socket, lambda message: True, deadline=10.0)
            assert hello == {"type": "hello", "user": {"name": "viewer", "role": "user"}}

            drop(long_clip, tmp_path / "tv" / "long.mkv")
            seen: list[Message] = []

            def note(want: Callable[[Message], bool]) -> Callable[[Message], bool]:
                def noted(message: Message) -> bool:
                    seen.append(message)
                    return want(message)

                return noted

            progress = await next_message(
                socket,
                note(lambda message: message["type"] == "progress" and message["progress"] > 0),
                deadline=DEADLINE,
            )
            assert progress["path"] == "long.mkv" and progress["library"] == "tv"
            assert 0 < progress["progress"] <= 100
            job_id = progress["job_id"]
            done = await next_message(
                socket,
                note(lambda message: message["type"] == "job" and message["job"]["state"] == "done"),
                deadline=DEADLINE,
            )
            assert done["job"]["id"] == job_id
            assert done["job"]["output"] == "TV/long.mkv"
        # queued and running may fall within one poll of the feed: then only running is told
        job_states = [message["job"]["state"] for message in seen if message["type"] == "job"]
        assert job_states in (["queued", "running", "done"], ["running", "done"]), job_states
        assert all(0 <= message["progress"] <= 100 for message in seen if message["type"] == "progress")

        async def ready() -> dict[str, Any] | None:
            status, body = await api.get("/api/status", token)
            assert status == 200, body
            library = body["libraries"][0]
            return library if library["condition"]["status"] == "Ready" else None

        library = await poll(ready, what="library tv Ready", agent=agent, deadline=30.0)
        assert library["name"] == "tv"
        assert library["counts"]["done"] == 1
        assert library["space"]["output_bytes"] > 0
        output = tmp_path / "archive" / "TV" / "long.mkv"
        assert output.stat().st_size == library["space"]["output_bytes"]

        status, metrics = await api.get("/metrics")
        assert status == 200
        assert 'hb2r_encode_seconds_count{library="tv",outcome="done"} 1.0' in metrics.splitlines()
        assert 'hb2r_jobs{library="tv",state="done"} 1.0' in metrics.splitlines()
    assert agent.stop() == 0


async def test_a_reload_removes_a_user_at_once_and_an_invalid_one_is_refused(
    tmp_path: Path, agents: Callable[[Path], Agent]
) -> None:
    port = free_port()
    config = api_config(tmp_path, port=port)
    agent = agents(config)
    async with aiohttp.ClientSession() as http:
        api = Client(http, port)
        health = await api.healthy(agent)
        assert health["config_generation"] == 1
        viewer = await api.login("viewer", VIEWER_PASSWORD)
        admin = await api.login("admin", ADMIN_PASSWORD)
        assert (await api.get("/api/auth/me", viewer))[0] == 200

        api_config(tmp_path, port=port, users=ADMIN)
        agent.process.send_signal(signal.SIGHUP)

        async def viewer_refused() -> bool:
            return (await api.get("/api/auth/me", viewer))[0] == 401

        await poll(viewer_refused, what="the removed user's token refused", agent=agent, deadline=10.0)

        async def reloaded() -> bool:
            return bool(agent.events("config reloaded"))

        await poll(reloaded, what="the reload finished", agent=agent, deadline=10.0)  # reloads are not serialized
        assert (await api.get("/api/auth/me", admin))[0] == 200
        assert (await api.healthy(agent))["config_generation"] == 2

        # Invalid (max_jobs is no number), and it would bring viewer back: it must not take effect.
        api_config(tmp_path, port=port, users=ADMIN + VIEWER, max_jobs="lots")
        agent.process.send_signal(signal.SIGHUP)

        async def degraded() -> dict[str, Any] | None:
            status, body = await api.get("/health")
            return body if status == 200 and body["status"] == "degraded" else None

        health = await poll(degraded, what="/health degraded", agent=agent, deadline=10.0)
        assert any("reload" in problem for problem in health["problems"]), health
        assert any("max_jobs" in problem for problem in health["problems"]), health
        assert health["config_generation"] == 2
        assert (await api.get("/api/auth/me", viewer))[0] == 401
        assert await api.login_status("viewer", VIEWER_PASSWORD) == 401
        assert (await api.get("/api/auth/me", admin))[0] == 200
        status, shown = await api.get("/api/status", admin)
        assert status == 200 and shown["reload_error"] and shown["config_generation"] == 2
    assert agent.events("config not reloaded; the old one stays in force")
    assert agent.stop() == 0


async def test_a_second_agent_on_the_same_listen_address_exits_and_the_first_keeps_running(
    tmp_path: Path, agents: Callable[[Path], Agent]
) -> None:
    port = free_port()
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = agents(api_config(tmp_path / "first", port=port))
    async with aiohttp.ClientSession() as http:
        api = Client(http, port)
        await api.healthy(first)

        second = agents(api_config(tmp_path / "second", port=port))  # its own state_dir: only the port is shared
        end = time.monotonic() + 30.0
        while second.process.poll() is None:
            assert time.monotonic() < end, f"the second agent did not exit:\n{log_tail(second)}"
            await asyncio.sleep(0.2)
        assert second.process.returncode != 0
        refusals = second.events("cannot start: cannot listen")
        assert refusals, log_tail(second)
        assert refusals[0]["listen"] == f"127.0.0.1:{port}"
        assert not second.events("agent started")

        assert first.process.poll() is None
        status, health = await api.get("/health")
        assert status == 200 and health["status"] == "healthy", health
    assert first.stop() == 0
