"""Two agents, each with its own state folder, publishing into one archive.

Each numbers its jobs from 1, and each cleans the archive's temp folder when it starts. Their
temp files must neither collide nor be removed by the other. Real HandBrakeCLI, real clips.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent import runtime
from agent.store import jobs
from tests.support.archive import Agent, packets_end, require_tools, write_config
from tests.support.clips import make_clip
from tests.support.outcomes import files_under
from tests.support.waiting import wait_for_async


def two_agents(tmp_path: Path) -> tuple[Agent, Agent, Path]:
    archive = tmp_path / "archive"
    archive.mkdir()
    first = write_config(tmp_path / "first", archive=archive)
    second = write_config(tmp_path / "second", archive=archive)
    make_clip(tmp_path / "first" / "tv" / "long.mkv", seconds=40, size="640x360")
    make_clip(tmp_path / "second" / "tv" / "short.mkv", seconds=2)
    return Agent.from_file(first), Agent.from_file(second), archive


def test_an_agent_starting_up_leaves_another_agents_temp_file_alone(tmp_path: Path) -> None:
    require_tools()
    busy, starting, archive = two_agents(tmp_path)

    async def scenario() -> None:
        await busy.scan()
        busy.dispatcher.tick()
        [entry] = busy.dispatcher.running.values()
        await wait_for_async(
            lambda: entry.progress > 1, what="the first agent's encode to be under way", deadline=60, interval=0.05
        )
        assert len(files_under(archive / ".hb2r-partial")) == 1

        runtime.clean_own_partials(starting.config, log=starting.log)  # what `hb2r run` does at start

        assert entry.temp is not None and entry.temp.exists()
        await wait_for_async(
            lambda: not busy.dispatcher.running, what="the first agent's encode to end", deadline=120, interval=0.05
        )
        assert busy.job(entry.job.id).state == jobs.JobState.DONE

    try:
        asyncio.run(scenario())
    finally:
        busy.close()
        starting.close()


def test_two_agents_encoding_their_job_1_at_once_each_publish_their_own_output(tmp_path: Path) -> None:
    require_tools()
    first, second, archive = two_agents(tmp_path)

    async def scenario() -> None:
        await first.scan()
        await second.scan()
        assert first.only_job().id == second.only_job().id == 1
        first.dispatcher.tick()
        [entry] = first.dispatcher.running.values()
        await wait_for_async(
            lambda: entry.progress > 1, what="the first agent's encode to be under way", deadline=60, interval=0.05
        )
        assert (await second.run_one()).state == jobs.JobState.DONE
        await wait_for_async(
            lambda: not first.dispatcher.running, what="the first agent's encode to end", deadline=120, interval=0.05
        )
        assert first.job(1).state == jobs.JobState.DONE, first.job(1).error

    try:
        asyncio.run(scenario())
    finally:
        first.close()
        second.close()
    assert packets_end(archive / "TV" / "long.mkv") > 39
    assert packets_end(archive / "TV" / "short.mkv") < 3
