"""A full archive disk during an encode: nothing is published, the job waits for space, then succeeds.

HandBrakeCLI 1.6.1 exits 0 with WorkDone.Error 0 when its output's disk fills, and the file's
header still claims the whole duration: only its packets and HandBrakeCLI's mux totals show
that most of it is missing. Real tmpfs, real HandBrakeCLI, real clip; the sampler is the real
one, measuring the tmpfs.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from agent.store import jobs
from tests.support.archive import Agent, free_bytes, packets_end, require_tools, tmpfs, write_config
from tests.support.clips import make_clip
from tests.support.outcomes import files_under

pytestmark = pytest.mark.usefixtures("tools")


@pytest.fixture
def tools() -> None:
    require_tools()


def test_a_disk_that_fills_during_the_encode_publishes_nothing_and_the_job_is_retried_when_space_is_back(
    tmp_path: Path,
) -> None:
    with tmpfs(tmp_path / "archive", size="4m") as archive:
        config_path = write_config(tmp_path, archive=archive)
        make_clip(tmp_path / "tv" / "clip.mkv", seconds=3)
        agent = Agent.from_file(config_path)

        async def scenario() -> None:
            await agent.scan()
            job = agent.only_job()
            agent.dispatcher.tick()
            assert list(agent.dispatcher.running) == [job.id]
            # Something else (Resilio receiving files from a peer) fills the disk while HandBrakeCLI starts.
            filler = archive / "filler"
            subprocess.run(["fallocate", "-l", str(free_bytes(archive) - 30 * 1024), str(filler)], check=True)
            while agent.dispatcher.running:
                await asyncio.sleep(0.05)

            failed = agent.job(job.id)
            assert failed.state == jobs.JobState.FAILED
            assert failed.attempts == 0  # a full disk is not the file's fault
            assert failed.error is not None and "temporary" in failed.error and "disk" in failed.error
            assert files_under(archive / "TV") == []
            assert files_under(archive / ".hb2r-partial") == []

            # While the disk is still full the gate holds the job back instead of wasting another encode.
            await asyncio.sleep(1.2)  # the one-second retry backoff of the config
            agent.dispatcher.tick()
            assert agent.dispatcher.running == {}

            filler.unlink()
            done = await agent.run_one()
            assert done.id == job.id and done.state == jobs.JobState.DONE
            output = archive / "TV" / "clip.mkv"
            assert packets_end(output) == pytest.approx(3.0, abs=0.2)

        try:
            asyncio.run(scenario())
        finally:
            agent.close()
