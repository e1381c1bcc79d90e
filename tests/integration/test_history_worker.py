"""What the dispatcher leaves in the history when an encode ends: real clips made with ffmpeg,
real HandBrakeCLI, a real state database, the real pass and dispatcher (tests/support/archive.py).

An operator reads these rows on the status page and in /api/history: a published encode counts on
its day with the bytes the ledger holds, an encode that saved too little counts no saving, and a
failure is there with HandBrakeCLI's reason (a failure to be retried is kept the same way:
tests/store/test_history_contract.py).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.history import local_day
from agent.store import jobs
from agent.store.history import Outcome
from tests.support.archive import Agent, require_tools, write_config
from tests.support.clips import make_clip

pytestmark = pytest.mark.usefixtures("tools")


@pytest.fixture
def tools() -> None:
    require_tools()


def agent_for(tmp_path: Path, settings: str = "") -> Agent:
    config_path = write_config(tmp_path, archive=tmp_path / "archive")
    config_path.write_text(config_path.read_text() + settings)
    (tmp_path / "archive").mkdir(exist_ok=True)
    return Agent.from_file(config_path)


def run_queued(agent: Agent) -> list[jobs.Job]:
    """Run a pass and every job it queued to its end; return the jobs as they ended."""

    async def scenario() -> list[jobs.Job]:
        await agent.scan()
        return [await agent.run_one(timeout=120) for _ in jobs.list_jobs(agent.connection, state=jobs.JobState.QUEUED)]

    return asyncio.run(scenario())


def test_a_published_encode_counts_on_its_day_with_the_bytes_the_ledger_holds(tmp_path: Path) -> None:
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=3, size="640x360")
    agent = agent_for(tmp_path)
    try:
        (job,) = run_queued(agent)
        assert job.state == jobs.JobState.DONE
        store = agent.state.store
        (entry,) = store.load_ledger().entries
        output_size = store.output_size(library="tv", rel_path="clip.mkv")
        assert output_size is not None and output_size < entry.size

        agent.dispatcher.tick()  # the next tick notes the queue empty

        today = local_day(datetime.now(UTC)).isoformat()
        (day,) = store.history_days(today)
        assert (day.encodes, day.failures, day.input_bytes, day.output_bytes) == (1, 0, entry.size, output_size)
        assert day.encode_seconds > 0
        assert (day.queue_peak, day.queue_last) == (1, 0)
        (event,) = store.recent_history(first_day=today, limit=10)
        finished = event.finished
        assert (finished.rel_path, finished.library, finished.job_id) == ("clip.mkv", "tv", job.id)
        assert finished.outcome is Outcome.DONE
        assert (finished.input_bytes, finished.output_bytes, finished.error) == (entry.size, output_size, None)
        assert finished.seconds is not None and finished.seconds > 0
        assert finished.host == agent.config.host.name
    finally:
        agent.close()


@pytest.mark.parametrize(("then", "published"), [("copy", True), ("skip", False)])
def test_an_encode_that_saved_too_little_counts_no_saving(tmp_path: Path, then: str, published: bool) -> None:
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=2, size="160x90")
    agent = agent_for(tmp_path, f"larger_output: {{min_saving: 99, then: {then}}}\n")  # no encode saves 99 %
    try:
        (job,) = run_queued(agent)
        assert job.state == jobs.JobState.DONE
        store = agent.state.store
        today = local_day(datetime.now(UTC)).isoformat()
        (day,) = store.history_days(today)
        assert day.encodes == 1 and day.input_bytes - day.output_bytes == 0
        (event,) = store.recent_history(first_day=today, limit=10)
        assert event.finished.larger_output == then
        assert (event.finished.output_bytes is not None) is published
    finally:
        agent.close()


def test_a_failure_is_kept_with_its_reason(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mkv", seconds=2)
    (tmp_path / "tv" / "broken.mkv").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tv" / "broken.mkv").write_bytes(clip.read_bytes()[:4096])  # no title HandBrakeCLI can find
    agent = agent_for(tmp_path)
    try:
        (job,) = run_queued(agent)
        assert job.state == jobs.JobState.DEAD  # no title found: permanent, dead at once
        store = agent.state.store
        today = local_day(datetime.now(UTC)).isoformat()
        (day,) = store.history_days(today)
        assert (day.encodes, day.failures, day.input_bytes, day.output_bytes) == (0, 1, 0, 0)
        (event,) = store.recent_history(first_day=today, limit=10)
        assert (event.finished.outcome, event.finished.rel_path) == (Outcome.DEAD, "broken.mkv")
        assert event.finished.error == job.error and "No title found" in (job.error or "")
        assert event.finished.input_bytes == 4096  # the size its fingerprint carries
    finally:
        agent.close()
