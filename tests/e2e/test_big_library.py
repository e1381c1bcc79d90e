"""A library of tens of thousands of files: a real `hb2r run`, restarted, must finish its first
pass (a full one, against a scan memory that remembers every file) within its planner lease.

The lease is the shortest allowed (3 s), so that a pass that holds the agent's loop for longer
than a lease, which at a million files and the default 30 s lease happens too, shows here: the
lease cannot be renewed meanwhile, the pass stops with "no longer leads", starts again, and
never ends. Nothing encodes: the time window is closed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.agent_process import AgentProcess
from tests.support.configs import write_config
from tests.support.e2e_api import ADMIN, VIEWER, VIEWER_PASSWORD, Client
from tests.support.ports import free_port
from tests.support.waiting import wait_for_async

FOLDERS, FILES_PER_FOLDER = 4000, 10


def closed_window() -> str:
    """A time window that does not hold the next hour: the gate stays closed during the test."""
    start = datetime.now(UTC).astimezone() + timedelta(hours=2)  # windows are in local time
    end = start + timedelta(hours=1)
    return f'  windows: ["{start:%H}:00-{end:%H}:00"]\n'


async def first_pass(api: Client, token: str) -> dict[str, Any] | None:
    status, body = await api.get("/api/status", token)
    return body.get("plan") if status == 200 else None


async def test_a_restarted_agent_finishes_its_full_first_pass_over_a_big_library_within_its_lease(
    tmp_path: Path, agents: Any
) -> None:
    source = tmp_path / "tv"
    for folder in range(FOLDERS):
        show = source / f"Show {folder // 10:03d}" / f"Season {folder % 10:02d}"
        show.mkdir(parents=True)
        for episode in range(FILES_PER_FOLDER):
            (show / f"E{episode:02d}.mkv").write_bytes(b"not really a video\n")
    port = free_port()
    config = write_config(tmp_path, port=port, users=ADMIN + VIEWER, extra_limits=closed_window())
    config.write_text(config.read_text() + "store: {lease: 3s}\n")

    async def run_until_a_pass_is_done() -> AgentProcess:
        agent: AgentProcess = agents(config)
        async with aiohttp.ClientSession() as http:
            api = Client(http, port)
            await api.healthy(agent)
            token = await api.login("viewer", VIEWER_PASSWORD)
            await wait_for_async(lambda: first_pass(api, token), what="the first pass", agent=agent, deadline=120.0)
        return agent

    first = await run_until_a_pass_is_done()  # the scan memory learns every file
    assert first.stop() == 0
    second = await run_until_a_pass_is_done()  # a full pass, every folder compared with the memory

    assert second.events("full pass")
    assert second.events("leadership lost: the pass stopped, nothing more written") == []
