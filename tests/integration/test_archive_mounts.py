"""An output folder on another mount than the archive's temp folder is found before any encode.

The atomic publish renames the temp file into place, which the kernel refuses across mounts
(EXDEV). Real tmpfs mounted at <archive>/TV, real HandBrakeCLI (which must never start).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.store import jobs
from tests.support.archive import Agent, require_tools, tmpfs, write_config
from tests.support.clips import make_clip
from tests.support.outcomes import files_under
from tests.support.waiting import wait_for_async


def test_an_output_folder_on_another_mount_is_refused_before_encoding_and_reported(tmp_path: Path) -> None:
    require_tools()
    archive = tmp_path / "archive"
    archive.mkdir()
    config_path = write_config(tmp_path, archive=archive)
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=1)
    with tmpfs(archive / "TV", size="8m"):
        agent = Agent.from_file(config_path)

        async def scenario() -> None:
            await agent.scan()
            job = agent.only_job()
            for _ in range(3):
                agent.dispatcher.tick()
                await asyncio.sleep(0.2)
            assert agent.dispatcher.running == {}
            assert "job started" not in agent.stream.getvalue()  # not one encode spent on it
            assert agent.job(job.id).attempts == 0
            condition = agent.state.conditions["tv"]
            assert condition.status == "Error"
            assert str(archive / "TV") in condition.reason and "mount" in condition.reason
            health = await agent.health()
            assert health["status"] == "degraded"
            assert any("library tv" in problem and "mount" in problem for problem in health["problems"])
            assert files_under(archive / ".hb2r-partial") == []

        try:
            asyncio.run(scenario())
        finally:
            agent.close()

    # Once the mount is gone the library recovers by itself and the file is encoded.
    async def recovered() -> None:
        agent = Agent.from_file(config_path)
        try:
            await agent.scan()
            assert agent.state.conditions["tv"].status != "Error"
            done = await agent.run_one()
            assert done.state == jobs.JobState.DONE
            assert files_under(archive / "TV") == ["clip.mkv"]
        finally:
            agent.close()

    asyncio.run(recovered())


def test_a_mount_appearing_under_an_output_folder_after_the_pass_still_stops_the_encode(tmp_path: Path) -> None:
    require_tools()
    archive = tmp_path / "archive"
    (archive / "TV" / "Show").mkdir(parents=True)
    config_path = write_config(tmp_path, archive=archive)
    make_clip(tmp_path / "tv" / "Show" / "clip.mkv", seconds=1)
    agent = Agent.from_file(config_path)

    async def scenario() -> None:
        await agent.scan()
        job = agent.only_job()
        with tmpfs(archive / "TV" / "Show", size="8m"):
            ended = await agent.run_one()
            assert ended.id == job.id
            assert ended.state == jobs.JobState.FAILED and ended.attempts == 0
            assert ended.error is not None and "mount" in ended.error
            assert "job started" not in agent.stream.getvalue()
            assert "tv" in agent.state.unpublishable_libraries

    try:
        asyncio.run(scenario())
    finally:
        agent.close()


def test_a_mount_appearing_during_the_encode_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    require_tools()
    archive = tmp_path / "archive"
    (archive / "TV").mkdir(parents=True)
    config_path = write_config(tmp_path, archive=archive)
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=40, size="640x360")
    agent = Agent.from_file(config_path)

    async def scenario() -> None:
        await agent.scan()
        agent.dispatcher.tick()
        [entry] = agent.dispatcher.running.values()
        await wait_for_async(lambda: entry.progress > 5, what="the encode to be under way", deadline=60, interval=0.05)
        with tmpfs(archive / "TV", size="8m"):
            await wait_for_async(
                lambda: not agent.dispatcher.running, what="the encode to end", deadline=120, interval=0.05
            )
            ended = agent.job(entry.job.id)
            assert ended.state == jobs.JobState.FAILED and ended.attempts == 0, ended
            assert ended.error is not None and "different file systems" in ended.error
            assert files_under(archive / ".hb2r-partial") == []  # not kept until a restart
            assert "tv" in agent.state.unpublishable_libraries

    try:
        asyncio.run(scenario())
    finally:
        agent.close()
