"""One reconcile pass against real files and a real database (no encoding: that is the worker's)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from agent import engine, logs
from agent.config import load_config
from agent.engine import EngineState, reconcile
from agent.store import jobs
from agent.store.db import open_database


def make_config(root: Path, files: int) -> Path:
    for folder in ("tv", "archive"):
        (root / folder).mkdir()
    for number in range(files):
        (root / "tv" / f"E{number:02d}.mkv").write_bytes(f"episode {number}".encode() * 100)
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries: [{name: tv, source: tv, output: TV, preset: tv, stable_after: 0s}]\n"
        "presets: {tv: {handbrake: 'Very Fast 480p30'}}\n"
    )
    return config


def test_a_big_library_is_queued_a_budget_at_a_time_and_every_file_gets_its_turn(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "ENQUEUE_BUDGET", 2)  # fingerprints read from disk per pass
    config = load_config(make_config(tmp_path, files=5)).config
    logs.configure(stream=io.StringIO(), json=True)

    async def passes() -> list[int]:
        connection = open_database(config.paths.state_dir)
        state = EngineState(config=config, connection=connection, preset_hashes={"tv": "p1"})
        counts = []
        for _ in range(4):
            await reconcile(state, log=logs.get_logger("test"))
            counts.append(len(jobs.list_jobs(connection, state=jobs.JobState.QUEUED)))
        connection.close()
        return counts

    assert asyncio.run(passes()) == [2, 4, 5, 5]


def test_jobs_the_plan_no_longer_wants_are_cancelled_but_not_those_of_a_paused_library(tmp_path: Path) -> None:
    config_path = make_config(tmp_path, files=2)
    config = load_config(config_path).config
    logs.configure(stream=io.StringIO(), json=True)

    async def scenario() -> None:
        connection = open_database(config.paths.state_dir)
        state = EngineState(config=config, connection=connection, preset_hashes={"tv": "p1"})
        await reconcile(state, log=logs.get_logger("test"))
        assert len(jobs.list_jobs(connection, state=jobs.JobState.QUEUED)) == 2

        (tmp_path / "tv").rename(tmp_path / "tv-unmounted")
        await reconcile(state, log=logs.get_logger("test"))
        assert "tv" in state.paused_libraries
        assert len(jobs.list_jobs(connection, state=jobs.JobState.QUEUED)) == 2  # kept while paused

        (tmp_path / "tv-unmounted").rename(tmp_path / "tv")
        (tmp_path / "tv" / "E01.mkv").unlink()  # deleted for real: its job goes
        await reconcile(state, log=logs.get_logger("test"))
        queued = [job.rel_path for job in jobs.list_jobs(connection, state=jobs.JobState.QUEUED)]
        cancelled = [job.rel_path for job in jobs.list_jobs(connection, state=jobs.JobState.CANCELLED)]
        assert (queued, cancelled) == (["E00.mkv"], ["E01.mkv"])
        connection.close()

    asyncio.run(scenario())
