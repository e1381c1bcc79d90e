"""`verify: {decode: true}`: an output damaged in its middle keeps its size and duration, passes
every header check, and is caught only by decoding it whole; such an output is never published.

Real clips made with ffmpeg, the real HandBrakeCLI, the real ffmpeg and ffprobe, the real dispatcher.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.handbrake.decode import decode_whole
from agent.handbrake.probe import media_duration, media_end
from agent.store import jobs
from agent.verify import decode_verdict, verify
from tests.support.archive import PRESET, require_tools
from tests.support.clips import make_clip
from tests.support.dispatch import Agent, alive, until
from tests.support.dispatch import write_config as write_dispatch_config

# Bytes written over part of an output: what a bad block or a failing disk leaves behind.
DAMAGE = bytes((index * 37 + 11) % 256 for index in range(4096))
# The clips are long enough, and the damage early enough (a fifth in: about 10 s of 48 s), that the
# end-of-stream check, which reads the last 30 s, does not see it: only decoding the whole file does.
SECONDS = 48


def damage_early(path: Path) -> None:
    """Overwrite 4 KiB a fifth into the file, keeping its size (and so its header and duration)."""
    size = path.stat().st_size
    with path.open("r+b") as file:
        file.seek(size // 5)
        file.write(DAMAGE)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real HandBrakeCLI encode of a clip ('whole') and a copy of it damaged early on ('damaged')."""
    require_tools()
    folder = tmp_path_factory.mktemp("decode")
    source = make_clip(folder / "source.mkv", seconds=SECONDS)
    whole = folder / "whole.mkv"
    subprocess.run(
        ["HandBrakeCLI", "-i", str(source), "-o", str(whole), "-Z", PRESET],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    damaged = folder / "damaged.mkv"
    shutil.copyfile(whole, damaged)
    damage_early(damaged)
    return {"source": source, "whole": whole, "damaged": damaged}


async def test_a_whole_encode_decodes_cleanly(outputs: dict[str, Path]) -> None:
    decoded = await decode_whole(outputs["whole"], nice=10)

    assert decode_verdict(exit_code=decoded.exit_code, errors=decoded.errors) is None


async def test_damage_early_on_passes_the_header_and_end_checks_but_not_the_decode_check(
    outputs: dict[str, Path],
) -> None:
    whole, damaged = outputs["whole"], outputs["damaged"]
    assert damaged.stat().st_size == whole.stat().st_size
    assert media_duration(damaged) == media_duration(whole)
    duration = media_duration(damaged)
    assert duration is not None
    header_checks = verify(
        exit_code=0,
        work_done_error=0,
        output_size=damaged.stat().st_size,
        source_duration=media_duration(outputs["source"]),
        output_duration=duration,
        output_end=media_end(damaged, duration=duration),
    )
    assert header_checks.ok  # what publishes it without the decode check

    decoded = await decode_whole(damaged, nice=10)
    verdict = decode_verdict(exit_code=decoded.exit_code, errors=decoded.errors)

    assert verdict is not None and not verdict.ok
    assert "does not decode cleanly" in verdict.reason
    assert decoded.errors  # ffmpeg's own words are in the reason


NICENESS_REPORTING_FFMPEG = """#!/bin/sh
# The real ffmpeg, run after writing down the niceness it was started at (the niceness of a
# process that ends in a fraction of a second cannot be read from outside reliably).
nice > "$(dirname "$0")/niceness"
exec ffmpeg "$@"
"""


async def test_the_decode_runs_at_the_encoders_niceness(outputs: dict[str, Path], tmp_path: Path) -> None:
    wrapper = tmp_path / "ffmpeg"
    wrapper.write_text(NICENESS_REPORTING_FFMPEG)
    wrapper.chmod(0o755)

    decoded = await decode_whole(outputs["whole"], nice=13, ffmpeg=str(wrapper))

    assert decoded.exit_code == 0
    assert (tmp_path / "niceness").read_text().strip() == "13"


DAMAGING_HANDBRAKE = """#!/bin/sh
# The real HandBrakeCLI, then 4 KiB of its output overwritten a fifth in: the real one
# cannot be made to write a damaged file on demand.
HandBrakeCLI "$@" || exit $?
while [ "$#" -gt 0 ]; do
  if [ "$1" = "--output" ]; then output="$2"; fi
  shift
done
size=$(stat -c %s "$output")
python3 - "$output" "$size" <<'PY'
import sys
with open(sys.argv[1], "r+b") as file:
    file.seek(int(sys.argv[2]) // 5)
    file.write(bytes((index * 37 + 11) % 256 for index in range(4096)))
PY
"""


def write_config(root: Path, *, binary: Path, verify_tv: str) -> Path:
    """Two libraries encoding with the damaging HandBrakeCLI: the decode check on by default, and
    `tv`'s own verify setting as given."""
    return write_dispatch_config(
        root,
        handbrake=f"{{binary: '{binary}'}}",
        options={"tv": f"verify: {verify_tv}"},
        extra="verify: {decode: true}\n",
    )


async def test_a_damaged_encode_is_failed_and_never_published_where_the_decode_check_is_on(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    require_tools()
    damaging = tmp_path / "bin" / "HandBrakeCLI"
    damaging.parent.mkdir()
    damaging.write_text(DAMAGING_HANDBRAKE)
    damaging.chmod(0o755)
    agent = dispatchers(write_config(tmp_path, binary=damaging, verify_tv="{decode: false}"))
    make_clip(tmp_path / "movies" / "film.mkv", seconds=SECONDS)
    make_clip(tmp_path / "tv" / "episode.mkv", seconds=SECONDS)
    source_bytes = (tmp_path / "movies" / "film.mkv").read_bytes()
    checked = agent.queue("movies", "film.mkv")
    unchecked = agent.queue("tv", "episode.mkv")

    await until(
        lambda: {agent.job(checked.id).state, agent.job(unchecked.id).state} <= {
            jobs.JobState.FAILED, jobs.JobState.DONE, jobs.JobState.DEAD,
        },
        what="both jobs to end",
        tick=agent.dispatcher,
    )  # fmt: skip

    failed = agent.job(checked.id)
    assert failed.state is jobs.JobState.FAILED
    assert "does not decode cleanly" in (failed.error or "")
    assert failed.attempts == 1  # counted: a new encode may come out whole
    assert not (tmp_path / "archive" / "MOVIES").exists() or not any((tmp_path / "archive" / "MOVIES").iterdir())
    assert list((tmp_path / "archive" / ".hb2r-partial").iterdir()) == []  # the temp file is gone too
    # tv turned the check off: the same damage passes every header check and is published.
    assert agent.job(unchecked.id).state is jobs.JobState.DONE
    assert (tmp_path / "archive" / "TV" / "episode.mkv").exists()
    assert (tmp_path / "movies" / "film.mkv").read_bytes() == source_bytes


SLOW_FFMPEG = """#!/bin/sh
# Stands in for the decode of a film, which takes minutes: the real ffmpeg decodes the test
# clips in a fraction of a second, too fast to cancel it midway.
echo $$ > "$(dirname "$0")/pid"
exec sleep 600
"""


async def test_a_job_cancelled_during_its_decode_check_stops_it_at_once_and_publishes_nothing(
    tmp_path: Path, dispatchers: Callable[[Path], Agent], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tools()
    make_clip(tmp_path / "movies" / "film.mkv", seconds=2)
    slow = tmp_path / "slow-bin" / "ffmpeg"
    slow.parent.mkdir()
    slow.write_text(SLOW_FFMPEG)
    slow.chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow.parent}:{os.environ['PATH']}")
    agent = dispatchers(write_config(tmp_path, binary=Path(shutil.which("HandBrakeCLI") or "HandBrakeCLI"),
                                verify_tv="{decode: true}"))  # fmt: skip
    job = agent.queue("movies", "film.mkv")
    agent.dispatcher.tick()
    await until(lambda: (slow.parent / "pid").exists(), what="the decode check to start")
    decoder = int((slow.parent / "pid").read_text())

    await agent.dispatcher.cancel_job(job.id)
    await until(lambda: job.id not in agent.dispatcher.running, what="the job to end")

    assert not alive(decoder)
    assert agent.job(job.id).state is jobs.JobState.CANCELLED
    assert not (tmp_path / "archive" / "MOVIES").exists()
    assert list((tmp_path / "archive" / ".hb2r-partial").iterdir()) == []
