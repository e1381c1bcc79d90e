"""The HTTP API of a real `hb2r run` process: real HandBrakeCLI, clips made with ffmpeg, loopback only.

Each test writes a config with users and `server.listen` on a free loopback port, starts the
agent, and talks to it as a browser or a scraper would: /health, login, the WebSocket,
/api/status, /metrics. Every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.agent_process import AgentProcess
from tests.support.clips import make_clip
from tests.support.e2e_api import (
    ADMIN,
    ADMIN_PASSWORD,
    VIEWER,
    VIEWER_PASSWORD,
    Client,
    Message,
    api_config,
    drop,
    next_message,
)
from tests.support.ports import free_port
from tests.support.waiting import DEADLINE, wait_for_async


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Thirty seconds of 640x360: HandBrakeCLI works on it for a few seconds."""
    return make_clip(tmp_path_factory.mktemp("clips") / "long.mkv", seconds=30, size="640x360")


async def test_an_encode_is_seen_live_over_the_websocket_and_then_in_status_and_metrics(
    tmp_path: Path, long_clip: Path, agents: Callable[[Path], AgentProcess]
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

        library = await wait_for_async(ready, what="library tv Ready", agent=agent, deadline=30.0)
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
    tmp_path: Path, agents: Callable[[Path], AgentProcess]
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

        await wait_for_async(viewer_refused, what="the removed user's token refused", agent=agent, deadline=10.0)

        async def reloaded() -> bool:
            return bool(agent.events("config reloaded"))

        await wait_for_async(
            reloaded, what="the reload finished", agent=agent, deadline=10.0
        )  # reloads are not serialized
        assert (await api.get("/api/auth/me", admin))[0] == 200
        assert (await api.healthy(agent))["config_generation"] == 2

        # Invalid (max_jobs is no number), and it would bring viewer back: it must not take effect.
        api_config(tmp_path, port=port, users=ADMIN + VIEWER, max_jobs="lots")
        agent.process.send_signal(signal.SIGHUP)

        async def degraded() -> dict[str, Any] | None:
            status, body = await api.get("/health")
            return body if status == 200 and body["status"] == "degraded" else None

        health = await wait_for_async(degraded, what="/health degraded", agent=agent, deadline=10.0)
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
    tmp_path: Path, agents: Callable[[Path], AgentProcess]
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
            assert time.monotonic() < end, f"the second agent did not exit:\n{second.log_tail()}"
            await asyncio.sleep(0.2)
        assert second.process.returncode != 0
        refusals = second.events("cannot start: cannot listen")
        assert refusals, second.log_tail()
        assert refusals[0]["listen"] == f"127.0.0.1:{port}"
        assert not second.events("agent started")

        assert first.process.poll() is None
        status, health = await api.get("/health")
        assert status == 200 and health["status"] == "healthy", health
    assert first.stop() == 0
