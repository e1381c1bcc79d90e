"""The dispatcher holds jobs back while the gate says no, says why, and starts them once it may.

The resource sample is simulated (a fake sampler) because filling the disk of a shared test
machine to below min_free_disk is not something a test may do; the job itself is real: it
is queued by a real pass and encoded by the real HandBrakeCLI once space is "back".
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from pathlib import Path

from agent import logs
from agent.config import load_config
from agent.dispatcher import Dispatcher
from agent.engine import AgentState, reconcile
from agent.gate import Sample
from agent.observe import preset_hashes
from agent.store import jobs
from agent.store.db import open_database
from agent.store.sqlite import SqliteStore
from tests.support.cli import hb2r
from tests.support.clips import make_clip
from tests.support.jobs import new_job
from tests.support.waiting import wait_for_async

REPO = Path(__file__).resolve().parents[2]
GIB = 1024**3


class FakeSampler:
    def __init__(self, archive_free: int) -> None:
        self.archive_free = archive_free

    def sample(self) -> Sample:
        return Sample(cpu_percent=5.0, memory_percent=20.0, available_memory=8 * GIB, archive_free=self.archive_free)


def make_library(root: Path, *, seconds: int, size: str, preset: str, limits: str) -> Path:
    """Make a one-clip library and its config under root; return the config's path."""
    for folder in ("tv", "archive"):
        (root / folder).mkdir()
    make_clip(root / "tv" / "clip.mkv", seconds=seconds, size=size, audio=False)
    config_path = root / "config.yaml"
    config_path.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries: [{name: tv, source: tv, output: TV, preset: tv, stable_after: 0s}]\n"
        f"presets: {{tv: {{handbrake: '{preset}'}}}}\n"
        f"limits: {limits}\n"
    )
    return config_path


def test_low_archive_space_holds_jobs_back_with_the_reason_shown_then_they_run(tmp_path: Path) -> None:
    config_path = make_library(
        tmp_path, seconds=1, size="320x180", preset="Very Fast 480p30", limits="{min_free_disk: 5GiB, max_jobs: 1}"
    )
    config = load_config(config_path).config
    stream = io.StringIO()
    logs.configure(stream=stream, json=True)
    log = logs.get_logger("test")

    async def scenario() -> None:
        connection = open_database(config.paths.state_dir)
        state = AgentState(
            config=config, store=SqliteStore(connection), preset_hashes=preset_hashes(config, warn=print)
        )
        await reconcile(state, log=log)
        assert [job.rel_path for job in jobs.list_jobs(connection, state=jobs.JobState.QUEUED)] == ["clip.mkv"]
        sampler = FakeSampler(archive_free=1 * GIB)
        dispatcher = Dispatcher(state, log=log, sampler=sampler)

        dispatcher.tick()
        assert dispatcher.running == {}
        held = [json.loads(line) for line in stream.getvalue().splitlines() if '"jobs held back"' in line]
        assert "archive free space 1 GiB is below min_free_disk 5 GiB" in held[0]["reasons"][0]
        listing = hb2r("jobs", str(config_path))
        assert listing.returncode == 0, listing.stderr
        assert "No job may start now: archive free space 1 GiB is below min_free_disk 5 GiB" in listing.stdout

        sampler.archive_free = 500 * GIB
        dispatcher.tick()
        assert len(dispatcher.running) == 1
        deadline = time.monotonic() + 60
        while dispatcher.running and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert [job.rel_path for job in jobs.list_jobs(connection, state=jobs.JobState.DONE)] == ["clip.mkv"]
        assert (config.paths.archive / "TV/clip.mkv").stat().st_size > 0
        listing = hb2r("jobs", str(config_path))
        assert listing.returncode == 0, listing.stderr
        assert "No job may start now" not in listing.stdout
        connection.close()

    asyncio.run(scenario())


def test_memory_pressure_pauses_the_running_encode_and_resumes_it_later(tmp_path: Path) -> None:
    import psutil

    config_path = make_library(
        tmp_path,
        seconds=20,
        size="640x360",
        preset="Fast 1080p30",
        limits="{min_free_disk: 1MiB, min_free_memory: 1GiB, memory_percent: 80, max_jobs: 1}",
    )
    config = load_config(config_path).config
    logs.configure(stream=io.StringIO(), json=True)
    log = logs.get_logger("test")

    class Memory:
        """A simulated memory sample: the host cannot be made to run short of memory on demand."""

        def __init__(self) -> None:
            self.available = 8 * GIB

        def sample(self) -> Sample:
            percent = 30.0 if self.available >= GIB else 97.0
            return Sample(
                cpu_percent=5.0, memory_percent=percent, available_memory=self.available, archive_free=500 * GIB
            )

    async def scenario() -> None:
        connection = open_database(config.paths.state_dir)
        state = AgentState(
            config=config, store=SqliteStore(connection), preset_hashes=preset_hashes(config, warn=print)
        )
        await reconcile(state, log=log)
        memory = Memory()
        dispatcher = Dispatcher(state, log=log, sampler=memory)
        dispatcher.tick()
        (running,) = dispatcher.running.values()
        await wait_for_async(lambda: running.encode is not None, what="the encode started", deadline=30, interval=0.05)
        assert running.encode is not None
        process = psutil.Process(running.encode.pid)

        memory.available = 200 * 1024**2
        dispatcher.tick()
        await wait_for_async(
            lambda: process.status() == psutil.STATUS_STOPPED, what="the encode paused", deadline=30, interval=0.05
        )
        assert running.suspended
        dispatcher.tick()  # still under pressure: no second job, nothing resumed
        assert process.status() == psutil.STATUS_STOPPED

        memory.available = 8 * GIB
        dispatcher.tick()
        assert not running.suspended
        assert process.status() != psutil.STATUS_STOPPED
        await dispatcher.stop()  # the rest of the encode is not needed: stop cleanly
        assert [job.state for job in jobs.list_jobs(connection)] == [jobs.JobState.QUEUED]
        connection.close()

    asyncio.run(scenario())


def test_a_job_of_a_library_taken_out_of_the_config_is_cancelled_not_run(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    config_path = make_library(
        tmp_path, seconds=1, size="320x180", preset="Very Fast 480p30", limits="{min_free_disk: 1MiB}"
    )
    config = load_config(config_path).config
    logs.configure(stream=io.StringIO(), json=True)

    async def scenario() -> None:
        connection = open_database(config.paths.state_dir)
        left_over = jobs.enqueue(  # of library movies, in an earlier config, not in this one
            connection,
            **new_job(
                "Film.mkv",
                library="movies",
                fingerprint="1:abc",
                preset_hash="old",
                output_path="Movies/Film.mkv",
                now=datetime.now(UTC),
            ),
        )
        assert left_over is not None
        state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={})
        dispatcher = Dispatcher(state, log=logs.get_logger("test"), sampler=FakeSampler(archive_free=500 * GIB))

        dispatcher.tick()

        assert dispatcher.running == {}
        assert jobs.get(connection, left_over.id).state == jobs.JobState.CANCELLED  # type: ignore[union-attr]
        connection.close()

    asyncio.run(scenario())
