"""An output hb2r adopted (it was there before hb2r) is never replaced, even when its source changes.

Real clips, real HandBrakeCLI, real SQLite: the pass adopts the operator's file, the source is
then replaced by new content, and the job that would re-encode it must end in a reported
conflict with the operator's bytes untouched.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from agent.store import jobs, ledger
from tests.support.archive import Agent, require_tools, write_config
from tests.support.clips import make_clip
from tests.support.outcomes import files_under


def test_a_changed_source_never_replaces_an_adopted_output_and_the_conflict_is_reported(tmp_path: Path) -> None:
    require_tools()
    archive = tmp_path / "archive"
    operator_file = archive / "TV" / "clip.mkv"
    operator_file.parent.mkdir(parents=True)
    operator_file.write_bytes(b"the operator's own transcode, made before hb2r was installed")
    config_path = write_config(tmp_path, archive=archive)
    source = make_clip(tmp_path / "tv" / "clip.mkv", seconds=1)
    agent = Agent.from_file(config_path)

    async def scenario() -> None:
        await agent.scan()
        assert jobs.list_jobs(agent.connection) == []  # adopted, not queued

        make_clip(source, seconds=2, frequency=880)  # new content at the same path
        await agent.scan()
        job = agent.only_job()
        assert job.reason == "changed"

        ended = await agent.run_one()
        assert ended.state == jobs.JobState.DEAD  # retrying cannot help until the operator acts
        assert ended.error is not None
        assert "conflict" in ended.error and "TV/clip.mkv" in ended.error and "did not make" in ended.error
        assert operator_file.read_bytes() == b"the operator's own transcode, made before hb2r was installed"
        assert files_under(archive / ".hb2r-partial") == []

    try:
        asyncio.run(scenario())
    finally:
        agent.close()


def test_an_output_published_just_before_a_crash_is_known_as_hb2rs_own(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    config_path = write_config(tmp_path, archive=archive)
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=1)
    agent = Agent.from_file(config_path)

    async def scenario() -> None:
        await agent.scan()
        job = agent.only_job()
        # The crash window: the encode was moved into place, the job never marked done (requeued at start).
        (archive / "TV").mkdir()
        (archive / "TV" / "clip.mkv").write_bytes(b"hb2r's verified encode")
        await agent.scan()
        assert ledger.made_output(agent.connection, job.output_path)  # so a later change may replace it

    try:
        asyncio.run(scenario())
    finally:
        agent.close()
