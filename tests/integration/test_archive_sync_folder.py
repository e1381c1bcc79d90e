"""A Resilio `.sync/` folder hb2r cannot write: reported once as an archive problem, encoding goes on.

The folder is made immutable with `chattr +i` (tests run as root, which ignores modes; an
immutable folder refuses even root with EPERM, like a folder owned by rslsync refuses the hb2r
user with EACCES). Real ext4 under /tmp, real HandBrakeCLI.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store import jobs
from tests.support.archive import Agent, require_tools, write_config
from tests.support.clips import make_clip
from tests.support.outcomes import files_under


@pytest.fixture
def locked_sync_folder(tmp_path: Path) -> Iterator[Path]:
    sync = tmp_path / "archive" / ".sync"
    sync.mkdir(parents=True)
    (sync / "ID").write_bytes(b"resilio share id")
    if subprocess.run(["chattr", "+i", str(sync)], check=False).returncode != 0:
        pytest.skip("chattr +i is not supported on this file system")
    try:
        yield sync
    finally:
        subprocess.run(["chattr", "-i", str(sync)], check=True)


def test_an_unwritable_sync_folder_is_reported_and_files_are_still_encoded(
    tmp_path: Path, locked_sync_folder: Path
) -> None:
    require_tools()
    archive = locked_sync_folder.parent
    config_path = write_config(tmp_path, archive=archive)
    make_clip(tmp_path / "tv" / "a.mkv", seconds=1)
    make_clip(tmp_path / "tv" / "b.mkv", seconds=1)
    agent = Agent.from_file(config_path)

    async def scenario() -> None:
        await agent.scan()
        assert [job.state for job in jobs.list_jobs(agent.connection)] == [jobs.JobState.QUEUED] * 2
        for _ in range(2):
            ended = await agent.run_one()
            assert ended.state == jobs.JobState.DONE, ended.error
        assert files_under(archive / "TV") == ["a.mkv", "b.mkv"]

        health = await agent.health()
        assert health["status"] == "degraded"
        [problem] = [problem for problem in health["problems"] if problem.startswith("archive:")]
        assert str(locked_sync_folder / "IgnoreList") in problem and "Resilio" in problem
        warnings = [line for line in agent.stream.getvalue().splitlines() if "IgnoreList" in line]
        assert len(warnings) == 1  # checked and reported once, not once per job

    try:
        asyncio.run(scenario())
    finally:
        agent.close()
