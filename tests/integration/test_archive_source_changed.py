"""A source rewritten while it is being encoded: nothing is published, the new content is queued.

Real HandBrakeCLI on a real 40 s clip; the test rewrites the source in place (as a copy tool
overwriting a file does) once the encode has reported progress, so HandBrakeCLI reads the
start of one content and the rest of another.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from agent.store import jobs
from tests.support.archive import Agent, require_tools, write_config
from tests.support.clips import make_clip
from tests.support.outcomes import files_under
from tests.support.waiting import wait_for_async


def test_a_source_rewritten_during_its_encode_is_not_published_and_its_new_content_is_queued(tmp_path: Path) -> None:
    require_tools()
    archive = tmp_path / "archive"
    archive.mkdir()
    config_path = write_config(tmp_path, archive=archive)
    source = make_clip(tmp_path / "tv" / "clip.mkv", seconds=40, size="640x360")
    replacement = make_clip(tmp_path / "other" / "clip.mkv", seconds=40, size="640x360", frequency=880)
    agent = Agent.from_file(config_path)

    async def scenario() -> None:
        await agent.scan()
        job = agent.only_job()
        agent.dispatcher.tick()
        entry = agent.dispatcher.running[job.id]
        await wait_for_async(lambda: entry.progress > 5, what="the encode to be under way", deadline=60, interval=0.05)
        with replacement.open("rb") as new, source.open("r+b") as old:  # in place: same inode
            shutil.copyfileobj(new, old)
            old.truncate()
        await wait_for_async(
            lambda: not agent.dispatcher.running, what="the encode to end", deadline=120, interval=0.05
        )

        ended = agent.job(job.id)
        assert ended.state == jobs.JobState.FAILED and ended.attempts == 0, ended
        assert ended.error is not None and "changed during the encode" in ended.error
        assert files_under(archive / "TV") == []
        assert files_under(archive / ".hb2r-partial") == []

        await agent.scan()  # the next pass queues the new content, superseding the old job
        newest = jobs.list_jobs(agent.connection)[-1]
        assert newest.id != job.id and newest.state == jobs.JobState.QUEUED
        assert agent.job(job.id).state == jobs.JobState.CANCELLED

    try:
        asyncio.run(scenario())
    finally:
        agent.close()
