"""Helpers for the archive fault tests: real clips, real mounts, a dispatcher driven tick by tick.

The dispatcher is the real one (real HandBrakeCLI, ffprobe, SQLite, file systems); the tests
call `tick()` themselves instead of running its loop, so that they decide when a job starts.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent import logs
from agent.api.app import init_app
from agent.api.context import assemble
from agent.config import load_config
from agent.config.models import Config
from agent.dispatcher import Dispatcher
from agent.engine import AgentState, reconcile
from agent.observe import preset_hashes
from agent.resources import Sampler
from agent.store import jobs
from agent.store.db import open_database
from agent.store.sqlite import SqliteStore
from tests.support.clips import ffprobe_csv
from tests.support.waiting import wait_for_async

PRESET = "Very Fast 480p30"
# The test machine is shared and busy: only the archive's space and the slots may hold a job back.
QUIET_LIMITS = "{cpu_percent: 100, memory_percent: 100, min_free_memory: 0B, min_free_disk: 0B, max_jobs: 2}"


def require_tools() -> None:
    for tool in ("ffmpeg", "ffprobe", "HandBrakeCLI"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")


@contextlib.contextmanager
def tmpfs(mount_point: Path, *, size: str) -> Iterator[Path]:
    """Mount a fresh tmpfs of `size` at mount_point for the block; unmount it after."""
    mount_point.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def write_config(root: Path, *, archive: Path, extra_paths: str = "", limits: str = QUIET_LIMITS) -> Path:
    """Write a one-library config (tv: <root>/tv -> <archive>/TV) with a one-second retry backoff."""
    (root / "tv").mkdir(parents=True, exist_ok=True)
    config_path = root / "config.yaml"
    config_path.write_text(
        "version: 1\n"
        f"paths: {{archive: '{archive}', state_dir: '{root / 'state'}'{extra_paths}}}\n"
        f"libraries: [{{name: tv, source: '{root / 'tv'}', output: TV, preset: tv, stable_after: 0s}}]\n"
        f"presets: {{tv: {{handbrake: '{PRESET}'}}}}\n"
        f"limits: {limits}\n"
        "retry: {attempts: 3, backoff: 1s, max_backoff: 1s}\n"
    )
    return config_path


class Agent:
    """A state database, an engine state and a real dispatcher for one config."""

    def __init__(self, config: Config, *, sampler: Any = None) -> None:
        self.stream = io.StringIO()
        logs.configure(stream=self.stream, json=True)
        self.log = logs.get_logger("test")
        self.config = config
        self.connection = open_database(config.paths.state_dir)
        self.state = AgentState(
            config=config, store=SqliteStore(self.connection), preset_hashes=preset_hashes(config, warn=print)
        )
        self.context = assemble(
            self.state,
            sampler=sampler or Sampler(config.paths.archive),
            secret=b"s" * 32,
            request_scan=lambda: None,
            log=self.log,
            now=datetime.now(UTC),
        )
        self.dispatcher: Dispatcher = self.context.dispatcher

    @classmethod
    def from_file(cls, config_path: Path, **options: Any) -> Agent:
        return cls(load_config(config_path).config, **options)

    async def scan(self) -> None:
        await reconcile(self.state, log=self.log)

    def job(self, job_id: int) -> jobs.Job:
        job = jobs.get(self.connection, job_id)
        assert job is not None
        return job

    def only_job(self) -> jobs.Job:
        listed = jobs.list_jobs(self.connection)
        assert len(listed) == 1, listed
        return listed[0]

    async def run_one(self, *, timeout: float = 60) -> jobs.Job:
        """Tick until a job starts, then wait for it to end; return it."""
        await wait_for_async(
            lambda: bool(self.dispatcher.tick() or self.dispatcher.running),
            what="a job to start",
            deadline=timeout,
            interval=0.05,
        )
        job_id = next(iter(self.dispatcher.running))
        await wait_for_async(
            lambda: not self.dispatcher.running, what=f"job {job_id} to end", deadline=timeout, interval=0.05
        )
        return self.job(job_id)

    async def health(self) -> dict[str, Any]:
        """GET /health from the agent's real HTTP app, served on loopback."""
        self.context.health_cache.clear()
        client = TestClient(TestServer(init_app(self.context), host="127.0.0.1"))
        await client.start_server()
        try:
            response = await client.get("/health")
            body: dict[str, Any] = await response.json()
            return body
        finally:
            await client.close()

    def close(self) -> None:
        self.context.checker.close()
        self.connection.close()


def packets_end(path: Path) -> float:
    """Return when the last packet of path ends (seconds), read by ffprobe from the packets themselves."""
    probed = ffprobe_csv(path, "packet=pts_time,duration_time")
    ends = []
    for line in probed.splitlines():
        fields = line.split(",")
        with contextlib.suppress(ValueError, IndexError):
            ends.append(float(fields[0]) + float(fields[1] or 0))
    return max(ends)
