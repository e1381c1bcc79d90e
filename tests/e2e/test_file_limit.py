"""`hb2r run` under a low file limit (RLIMIT_NOFILE 128) with 140 idle TCP connections.

Each idle socket the server accepts holds a file descriptor; once the process has none left,
accepting, SQLite, scans and encodes all fail. The agent must keep its descriptors below the
limit (a cap on connections, idle clients timed out), keep serving new clients, log the
shortage once a minute rather than per event, and never take it for an unreadable library.
"""

from __future__ import annotations

import errno
import json
import re
import resource
import select
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.agent_process import AgentProcess, StartAgent
from tests.support.clips import make_clip
from tests.support.configs import write_config
from tests.support.outcomes import copy, jobs_by_state, published
from tests.support.waiting import wait_for

OPEN_FILES = 128
IDLE_CONNECTIONS = 140


def open_files_limit(open_files: int, hard: int | None = None) -> Callable[[], None]:
    """Return a pre-exec hook that sets RLIMIT_NOFILE to (open_files, hard), hard defaulting to
    open_files (then the agent cannot raise it)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, hard or open_files))

    return limit


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {"one": make_clip(folder / "one.mkv", seconds=1), "two": make_clip(folder / "two.mkv", seconds=2)}


@pytest.fixture
def limited(agents: StartAgent) -> Callable[..., AgentProcess]:
    """Return limited(config, hard=None) -> an agent started with OPEN_FILES open files at most."""

    def start(config: Path, *, hard: int | None = None) -> AgentProcess:
        return agents(config, preexec=open_files_limit(OPEN_FILES, hard))

    return start


def listen_address(config: Path) -> tuple[str, int]:
    for line in config.read_text().splitlines():
        if line.startswith("server:"):
            host, port = line.split('"')[1].rsplit(":", 1)
            return host, int(port)
    raise AssertionError("no server.listen in the config")


def health(host: str, port: int) -> dict[str, object] | None:
    """GET /health on a new connection; return its JSON, or None if it did not answer 200 in time."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=2) as response:
            return dict(json.load(response)) if response.status == 200 else None
    except (OSError, urllib.error.URLError, ValueError):
        return None


def open_idle_connections(host: str, port: int, count: int, *, deadline: float = 30.0) -> list[socket.socket]:
    """Open count connections that never send a byte; return once each is connected (accepted,
    or queued by the kernel) or the deadline passed (a server that stopped accepting)."""
    sockets = []
    for _ in range(count):
        idle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        idle.setblocking(False)
        result = idle.connect_ex((host, port))
        assert result in (0, errno.EINPROGRESS), errno.errorcode.get(result, result)
        sockets.append(idle)
    connecting = list(sockets)
    end = time.monotonic() + deadline
    while connecting and time.monotonic() < end:
        _, writable, _ = select.select([], connecting, [], 0.5)
        connecting = [pending for pending in connecting if pending not in writable]
    return sockets


def open_descriptors(agent: AgentProcess) -> int:
    return len(list(Path(f"/proc/{agent.process.pid}/fd").iterdir()))


def test_idle_connections_at_a_low_file_limit_do_not_stall_the_agent(
    tmp_path: Path, clips: dict[str, Path], limited: Callable[..., AgentProcess]
) -> None:
    config = write_config(tmp_path)
    host, port = listen_address(config)
    copy(clips["one"], tmp_path / "tv/before.mkv")
    agent = limited(config)
    wait_for(lambda: published(tmp_path) == ["TV/before.mkv"], what="the first clip published", agent=agent)
    lines_before = len(agent.log_path.read_text().splitlines())
    baseline = open_descriptors(agent)

    idle = open_idle_connections(host, port, IDLE_CONNECTIONS)
    try:
        copy(clips["two"], tmp_path / "tv/during.mkv")
        answer = wait_for(
            lambda: health(host, port), what="/health answering a new connection", agent=agent, deadline=40
        )
        wait_for(
            lambda: published(tmp_path) == ["TV/before.mkv", "TV/during.mkv"],
            what="the clip dropped in meanwhile published",
            agent=agent,
            deadline=60,
        )
        assert isinstance(answer, dict)
        assert not [problem for problem in answer.get("problems", []) if "paused" in str(problem)], answer
        # Idle clients are not kept: those the agent accepted are timed out (the kernel may hold
        # the rest, half-open, without a descriptor of the agent's).
        wait_for(
            lambda: open_descriptors(agent) <= baseline + 4,
            what="the agent's descriptors back to what they were before the idle connections",
            agent=agent,
            deadline=40,
        )
    finally:
        for connection in idle:
            connection.close()

    assert agent.stop() == 0
    log = agent.log_path.read_text()
    lines = log.splitlines()
    assert len(lines) - lines_before < 100, "\n".join(lines[-40:])
    assert "Traceback" not in log, log[-3000:]
    assert not agent.events("library paused"), agent.events("library paused")
    assert sorted(jobs_by_state(tmp_path).get("done", [])) == ["before.mkv", "during.mkv"]


def test_the_agent_raises_its_soft_file_limit_to_the_hard_one(
    tmp_path: Path, limited: Callable[..., AgentProcess]
) -> None:
    config = write_config(tmp_path)
    host, port = listen_address(config)
    agent = limited(config, hard=4096)
    wait_for(lambda: health(host, port), what="/health answering", agent=agent, deadline=30)

    limits = Path(f"/proc/{agent.process.pid}/limits").read_text()
    assert re.search(r"^Max open files\s+4096\s+4096\s", limits, flags=re.MULTILINE), limits
    started = agent.events("agent started")[0]
    assert (started["open_files_limit"], started["max_connections"]) == (4096, 256)
    assert agent.stop() == 0
