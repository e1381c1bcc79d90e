"""The dispatcher carries every job to an end while the agent lives, whatever goes wrong.

Real SQLite, the real HandBrakeCLI on clips made with ffmpeg, the real resource Sampler (the
limits below are set so that it always admits). A fake HandBrakeCLI is used only where the
real one cannot be made to misbehave on demand (a hang), and the test says so.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from agent.api.health import health_report
from agent.config import load_config
from agent.gate import Sample
from agent.notify.events import Event, EventKind
from agent.store import jobs
from agent.store.db import database_path
from tests.support.clips import make_clip
from tests.support.dispatch import Agent, alive, until, write_config


async def test_a_job_whose_failure_cannot_be_recorded_is_recorded_later_and_frees_its_slot(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    agent = dispatchers(write_config(tmp_path))
    (tmp_path / "tv" / "broken.mkv").write_bytes(b"not a video " * 1000)  # HandBrakeCLI fails at once: no title
    job = agent.queue("tv", "broken.mkv")
    agent.state.store.database.execute("PRAGMA busy_timeout = 50")
    agent.dispatcher.tick()
    entry = agent.dispatcher.running[job.id]
    assert entry.task is not None
    # Another process holds the write lock while the failure is recorded: SQLITE_BUSY.
    locker = sqlite3.connect(database_path(tmp_path / "state"), isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    await until(entry.task.done, what="the encode to end")
    assert job.id not in agent.dispatcher.running  # the slot is free at once
    locker.execute("ROLLBACK")
    locker.close()

    await until(
        lambda: agent.job(job.id).state is not jobs.JobState.RUNNING, what="the failure recorded", tick=agent.dispatcher
    )
    failed = agent.job(job.id)
    assert failed.state is jobs.JobState.DEAD  # a file with no title is a permanent failure
    assert "no title" in (failed.error or "")


async def test_an_encode_whose_library_a_reload_removed_is_stopped_and_leaves_nothing(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    # A slow x264 setting on a longer clip: the encode is still running when the config changes.
    agent = dispatchers(write_config(tmp_path, args="['--encoder-preset', 'veryslow']"))
    make_clip(tmp_path / "tv" / "long.mkv", seconds=20, size="640x360")
    job = agent.queue("tv", "long.mkv")
    agent.dispatcher.tick()
    entry = agent.dispatcher.running[job.id]
    partial = tmp_path / "archive" / ".hb2r-partial"
    await until(lambda: entry.encode is not None and entry.progress > 0, what="the encode to make progress")
    assert entry.encode is not None
    pid = entry.encode.pid

    agent.state.config = load_config(write_config(tmp_path, libraries=("movies",))).config  # the reload
    agent.dispatcher.tick()

    await until(lambda: job.id not in agent.dispatcher.running, what="the encode to stop")
    assert not alive(pid)
    assert agent.job(job.id).state is jobs.JobState.CANCELLED
    assert list(partial.iterdir()) == []  # its temp file removed
    assert not (tmp_path / "archive" / "TV").exists()  # nothing published


HANGING_HANDBRAKE = """#!/bin/sh
# A HandBrakeCLI that hangs (the real one cannot be made to hang on demand): it starts a child,
# as HandBrakeCLI's helpers would, says nothing and never ends.
sleep 600 &
echo $$ $! > "$(dirname "$0")/pids"
wait
"""


async def test_a_hung_encode_is_killed_failed_as_temporary_and_reported(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    fake = tmp_path / "bin" / "HandBrakeCLI"
    fake.parent.mkdir()
    fake.write_text(HANGING_HANDBRAKE)
    fake.chmod(0o755)
    agent = dispatchers(write_config(tmp_path, handbrake=f"{{binary: {fake}, stall_timeout: 1s}}"))
    told: list[Event] = []
    agent.state.notify = told.append  # what the notifier would be handed (agent.notify.notifier.Notifier.emit)
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=1)
    job = agent.queue("tv", "clip.mkv")
    agent.dispatcher.tick()
    pids_file = fake.parent / "pids"
    await until(pids_file.exists, what="the fake encoder to start")

    await until(lambda: job.id not in agent.dispatcher.running, what="the watchdog", tick=agent.dispatcher)

    pids = [int(pid) for pid in pids_file.read_text().split()]
    assert not any(alive(pid) for pid in pids)  # the whole process tree
    stalled = agent.job(job.id)
    assert stalled.state is jobs.JobState.FAILED
    assert stalled.attempts == 0  # temporary: not counted against the file
    assert "no progress" in (stalled.error or "")
    assert stalled.not_before is not None  # retried later
    assert agent.events("job stalled")
    report = health_report(agent.context)
    assert report["status"] == "degraded"
    assert any("stalled" in problem and "clip.mkv" in problem for problem in report["problems"])
    assert 'outcome="stalled"' in agent.context.metrics.render()[0].decode()
    assert [(event.kind, event.subject) for event in told] == [(EventKind.ENCODE_STALLED, "tv")]  # told once
    assert "tv/clip.mkv: no progress for" in told[0].body

    jobs.cancel(agent.state.store.database, job.id, now=datetime.now(UTC), by=jobs.CancelledBy.OPERATOR)
    agent.dispatcher.tick()
    assert health_report(agent.context)["status"] == "healthy"  # the stalled job is settled


class MemoryPressure:
    """The host's sample with memory pressure switched on and off by the test: the real host
    cannot be put under memory pressure on demand (this is the one fake sampler here)."""

    def __init__(self) -> None:
        self.pressed = True

    def sample(self) -> Sample:
        memory = 100.0 if self.pressed else 10.0
        return Sample(cpu_percent=5.0, memory_percent=memory, available_memory=8 * 1024**3, archive_free=1024**4)


async def test_a_suspended_encode_is_not_stalled(tmp_path: Path, dispatchers: Callable[[Path], Agent]) -> None:
    fake = tmp_path / "bin" / "HandBrakeCLI"  # hangs: see HANGING_HANDBRAKE
    fake.parent.mkdir()
    fake.write_text(HANGING_HANDBRAKE)
    fake.chmod(0o755)
    agent = dispatchers(write_config(tmp_path, handbrake=f"{{binary: {fake}, stall_timeout: 1s}}"))
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=1)
    job = agent.queue("tv", "clip.mkv")
    agent.dispatcher.tick()
    entry = agent.dispatcher.running[job.id]
    await until(lambda: entry.encode is not None, what="the fake encoder to start")
    pressure = MemoryPressure()
    agent.dispatcher.sampler = pressure
    await until(lambda: entry.suspended, what="the encode suspended", tick=agent.dispatcher)

    end = time.monotonic() + 2.5  # longer than stall_timeout: a suspended encode waits, it is not stuck
    while time.monotonic() < end:
        agent.dispatcher.tick()
        await asyncio.sleep(0.1)
    assert job.id in agent.dispatcher.running

    pressure.pressed = False  # resumed by the dispatcher, then still no progress: stalled
    await until(
        lambda: job.id not in agent.dispatcher.running, what="the watchdog after resuming", tick=agent.dispatcher
    )
    assert agent.events("job resumed") and agent.events("job stalled")


def started(agent: Agent, job_id: int) -> int:
    """How many times the job's encode was started (its "job started" log lines)."""
    return sum(1 for line in agent.events("job started") if f'"job": {job_id},' in line)


async def test_a_file_handbrake_finds_no_title_in_is_dead_after_one_attempt(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    # HandBrakeCLI 1.6.1 on bytes that are no video: "scan: unrecognized file type",
    # "libhb: scan thread found 0 valid title(s)", "No title found.", exit code 2.
    agent = dispatchers(write_config(tmp_path))
    (tmp_path / "tv" / "notes.mkv").write_bytes(os.urandom(200_000))
    job = agent.queue("tv", "notes.mkv")

    await until(
        lambda: agent.job(job.id).state in (jobs.JobState.DEAD, jobs.JobState.FAILED),
        what="the job to end",
        tick=agent.dispatcher,
    )

    dead = agent.job(job.id)
    assert dead.state is jobs.JobState.DEAD  # not failed, to be tried retry.attempts (3) times
    assert "no title" in (dead.error or "")
    assert dead.not_before is None
    assert (started(agent, job.id), dead.attempts) == (1, 1)  # one encode, counted
    assert list((tmp_path / "archive" / ".hb2r-partial").iterdir()) == []


async def test_a_job_whose_source_is_gone_when_it_starts_is_dead_at_once(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    agent = dispatchers(write_config(tmp_path))
    make_clip(tmp_path / "tv" / "gone.mkv", seconds=1)
    job = agent.queue("tv", "gone.mkv")
    (tmp_path / "tv" / "gone.mkv").unlink()  # between the pass that queued it and its start

    await until(
        lambda: agent.job(job.id).state in (jobs.JobState.DEAD, jobs.JobState.FAILED),
        what="the job to end",
        tick=agent.dispatcher,
    )

    dead = agent.job(job.id)
    assert dead.state is jobs.JobState.DEAD
    assert "source is gone" in (dead.error or "")
    assert not (tmp_path / "archive" / "TV").exists()


async def test_a_job_whose_source_vanished_during_its_encode_is_dead_and_publishes_nothing(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    agent = dispatchers(write_config(tmp_path, args="['--encoder-preset', 'veryslow']"))
    source = make_clip(tmp_path / "tv" / "brief.mkv", seconds=8, size="640x360")
    job = agent.queue("tv", "brief.mkv")
    agent.dispatcher.tick()
    entry = agent.dispatcher.running[job.id]
    await until(lambda: entry.encode is not None and entry.progress > 0, what="the encode to make progress")
    source.unlink()  # HandBrakeCLI keeps reading its open file to the end

    await until(lambda: job.id not in agent.dispatcher.running, what="the encode to end", tick=agent.dispatcher)

    dead = agent.job(job.id)
    assert dead.state is jobs.JobState.DEAD
    assert "source is gone" in (dead.error or "")
    assert not (tmp_path / "archive" / "TV").exists()
    assert list((tmp_path / "archive" / ".hb2r-partial").iterdir()) == []
