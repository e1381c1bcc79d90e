"""`hb2r run` as a real process, with the real HandBrakeCLI, on clips made with ffmpeg.

Each test writes a config into its own tmp_path, starts the agent, drops or changes files,
and polls (with a deadline, never a fixed sleep) for what an operator would look at: the
archive, `hb2r jobs`, `hb2r plan`, the log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.agent_process import AgentProcess, StartAgent
from tests.support.cli import hb2r
from tests.support.clips import make_clip, probed_duration
from tests.support.configs import write_config
from tests.support.outcomes import archive_files, checksums, copy, jobs_by_state, published
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "one": make_clip(folder / "one.mkv", seconds=1),
        "two": make_clip(folder / "two.mkv", seconds=2),
        "three": make_clip(folder / "three.mkv", seconds=3),
        "long": make_clip(folder / "long.mkv", seconds=30, size="640x360"),
    }


def mid_encode(root: Path, clip: Path, agents: StartAgent) -> tuple[Path, AgentProcess]:
    """Start an agent on a config under root with clip as tv/long.mkv; return (config, agent) once an
    encode is writing its temp file (HandBrakeCLI is mid-encode)."""
    config = write_config(root)
    copy(clip, root / "tv/long.mkv")
    agent = agents(config)
    partial = root / "archive" / ".hb2r-partial"
    wait_for(lambda: partial.is_dir() and any(partial.iterdir()), what="an encode writing its temp file", agent=agent)
    return config, agent


def test_a_nested_library_is_encoded_once_and_then_in_sync(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    config = write_config(tmp_path)
    copy(clips["one"], tmp_path / "tv/Show A/Season 1/A - S01E01.mkv")
    copy(clips["two"], tmp_path / "tv/Show A/Season 1/A - S01E02.mkv")
    copy(clips["one"], tmp_path / "tv/Show B/B - S01E01.mp4")
    sources = checksums(tmp_path / "tv")
    agent = agents(config)

    expected = ["TV/Show A/Season 1/A - S01E01.mkv", "TV/Show A/Season 1/A - S01E02.mkv", "TV/Show B/B - S01E01.mkv"]
    wait_for(lambda: published(tmp_path) == expected, what="three published outputs", agent=agent)
    wait_for(
        lambda: (
            sorted(jobs_by_state(tmp_path).get("done", []))
            == sorted(["Show A/Season 1/A - S01E01.mkv", "Show A/Season 1/A - S01E02.mkv", "Show B/B - S01E01.mp4"])
        ),
        what="three done jobs",
        agent=agent,
    )

    plan = hb2r("plan", str(config))
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "in sync" in plan.stdout
    assert agent.stop() == 0
    assert len(agent.events("job started")) == 3  # each encoded exactly once
    assert archive_files(tmp_path) == expected  # no temp file left behind
    assert checksums(tmp_path / "tv") == sources  # sources untouched


def started_paths(agent: AgentProcess) -> list[object]:
    return [event.get("path") for event in agent.events("job started")]


def test_a_file_still_being_written_is_not_started_until_it_is_stable(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    config = write_config(tmp_path, stable_after="2s")
    agent = agents(config)
    target = tmp_path / "tv" / "growing.mkv"
    data = clips["three"].read_bytes()
    # A copy that takes about four seconds: a chunk every 0.25 s (the writer's pace, not a wait).
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "data = open(sys.argv[1], 'rb').read()\n"
            "step = len(data) // 16 + 1\n"
            "with open(sys.argv[2], 'wb') as out:\n"
            "    for i in range(0, len(data), step):\n"
            "        out.write(data[i:i + step]); out.flush(); time.sleep(0.25)\n",
            str(clips["three"]),
            str(target),
        ]
    )
    try:
        while writer.poll() is None:
            assert "growing.mkv" not in started_paths(agent), "started while the file was still being written"
            time.sleep(0.1)
    finally:
        writer.wait()
    assert target.read_bytes() == data
    wait_for(lambda: published(tmp_path) == ["TV/growing.mkv"], what="the finished copy published", agent=agent)
    assert started_paths(agent) == ["growing.mkv"]
    assert agent.stop() == 0


def test_broken_sources_end_dead_and_nothing_of_theirs_is_published(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    config = write_config(tmp_path, attempts=2)
    copy(clips["one"], tmp_path / "tv/good.mkv")
    whole = clips["three"].read_bytes()
    (tmp_path / "tv/truncated.mkv").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "tv/noise.mkv").write_bytes(os.urandom(200_000))
    sources = checksums(tmp_path / "tv")
    agent = agents(config)

    wait_for(
        lambda: sorted(jobs_by_state(tmp_path).get("dead", [])) == ["noise.mkv", "truncated.mkv"],
        what="both broken sources dead",
        agent=agent,
    )
    wait_for(lambda: published(tmp_path) == ["TV/good.mkv"], what="the good clip published", agent=agent)
    dead = [event for event in agent.events("job dead")]
    reasons = {str(event["path"]): str(event["reason"]) for event in dead}
    assert "truncated source?" in reasons["truncated.mkv"]
    assert reasons["noise.mkv"]  # HandBrakeCLI's own failure, named
    jobs_listing = hb2r("jobs", "--state", "dead", str(config))
    assert "truncated.mkv" in jobs_listing.stdout and "noise.mkv" in jobs_listing.stdout
    assert agent.stop() == 0
    assert archive_files(tmp_path) == ["TV/good.mkv"]
    assert checksums(tmp_path / "tv") == sources


def test_a_crash_mid_encode_leaves_no_partial_output_and_the_job_finishes_after_restart(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    config, first = mid_encode(tmp_path, clips["long"], agents)
    sources = checksums(tmp_path / "tv")
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert published(tmp_path) == []  # nothing half-written where Resilio would see it
    assert jobs_by_state(tmp_path) == {"running": ["long.mkv"]}

    second = agents(config)
    wait_for(lambda: published(tmp_path) == ["TV/long.mkv"], what="the job finished after restart", agent=second)
    assert second.events("job requeued")
    assert second.stop() == 0
    assert archive_files(tmp_path) == ["TV/long.mkv"]  # exactly one output, temp cleaned
    assert jobs_by_state(tmp_path) == {"done": ["long.mkv"]}
    assert checksums(tmp_path / "tv") == sources


def test_sigterm_mid_encode_exits_cleanly_and_requeues_the_job(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    _, agent = mid_encode(tmp_path, clips["long"], agents)

    began = time.monotonic()
    assert agent.stop(signal.SIGTERM) == 0
    assert time.monotonic() - began < 10
    assert jobs_by_state(tmp_path) == {"queued": ["long.mkv"]}
    assert archive_files(tmp_path) == []  # no temp file, nothing published
    assert not [proc for proc in _handbrake_processes() if str(tmp_path) in " ".join(proc)]


def _handbrake_processes() -> list[list[str]]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"HandBrakeCLI"):
            found.append([part.decode(errors="replace") for part in argv])
    return found


def test_a_renamed_source_moves_its_output_and_a_changed_one_is_encoded_again(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    config = write_config(tmp_path)
    copy(clips["one"], tmp_path / "tv/Show/old name.mkv")
    copy(clips["two"], tmp_path / "tv/Show/other.mkv")
    agent = agents(config)
    wait_for(
        lambda: published(tmp_path) == ["TV/Show/old name.mkv", "TV/Show/other.mkv"], what="first encodes", agent=agent
    )
    (tmp_path / "tv/Show/old name.mkv").rename(tmp_path / "tv/Show/new name.mkv")
    wait_for(
        lambda: published(tmp_path) == ["TV/Show/new name.mkv", "TV/Show/other.mkv"], what="output moved", agent=agent
    )
    assert len(agent.events("job started")) == 2  # moved, not encoded again
    assert agent.events("output renamed")

    copy(clips["three"], tmp_path / "tv/Show/other.mkv")  # new content under the same name
    wait_for(lambda: started_paths(agent).count("Show/other.mkv") == 2, what="the changed source encoded", agent=agent)
    wait_for(
        lambda: jobs_by_state(tmp_path).get("done", []).count("Show/other.mkv") == 2, what="re-encode done", agent=agent
    )
    assert agent.stop() == 0
    assert published(tmp_path) == ["TV/Show/new name.mkv", "TV/Show/other.mkv"]
    duration = probed_duration(tmp_path / "archive/TV/Show/other.mkv")
    assert duration is not None
    assert abs(duration - 3.0) < 0.5  # the new three-second content, not the old two


def test_an_invalid_config_edit_keeps_the_old_config_and_a_valid_one_applies(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    config = write_config(tmp_path)
    agent = agents(config)
    wait_for(lambda: agent.events("agent started"), what="start-up", agent=agent)
    good = config.read_text()
    config.write_text(good.replace("max_jobs: 1", "max_jobs: lots"))
    wait_for(lambda: agent.events("config not reloaded; the old one stays in force"), what="refusal", agent=agent)
    refused = agent.events("config not reloaded; the old one stays in force")[0]
    assert any("max_jobs" in str(error) for error in refused["errors"])  # type: ignore[union-attr]

    (tmp_path / "movies").mkdir()
    copy(clips["one"], tmp_path / "movies/film.mkv")
    config.write_text(
        good.replace(
            "presets:",
            "  - {name: movies, source: movies, output: Movies, preset: tv, stable_after: 1s}\npresets:",
        )
    )
    wait_for(lambda: agent.events("config reloaded"), what="the valid config applied", agent=agent)
    wait_for(lambda: "Movies/film.mkv" in published(tmp_path), what="the new library encoded", agent=agent)
    assert agent.stop() == 0


def test_a_library_whose_preset_handbrake_lacks_is_held_back_and_the_others_work(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    config = write_config(tmp_path)
    (tmp_path / "movies").mkdir()
    copy(clips["one"], tmp_path / "movies/film.mkv")
    copy(clips["one"], tmp_path / "tv/episode.mkv")
    text = config.read_text()
    text = text.replace(
        "presets:", "  - {name: movies, source: movies, output: Movies, preset: odd, stable_after: 1s}\npresets:"
    )
    text = text.replace("container: mkv}", 'container: mkv}\n  odd: {handbrake: "No Such Preset 9000p"}')
    config.write_text(text)
    agent = agents(config)

    wait_for(lambda: published(tmp_path) == ["TV/episode.mkv"], what="the good library encoded", agent=agent)
    errors = agent.events("library cannot encode")
    assert [event["library"] for event in errors] == ["movies"]
    assert "No Such Preset 9000p" in str(errors[0]["reason"])
    assert agent.stop() == 0
    assert published(tmp_path) == ["TV/episode.mkv"]
    assert "film.mkv" not in started_paths(agent)


def test_a_vanished_source_folder_pauses_its_library_and_keeps_every_output(
    tmp_path: Path, clips: dict[str, Path], agents: StartAgent
) -> None:
    config = write_config(tmp_path)
    copy(clips["one"], tmp_path / "tv/a.mkv")
    copy(clips["two"], tmp_path / "tv/b.mkv")
    agent = agents(config)
    wait_for(lambda: published(tmp_path) == ["TV/a.mkv", "TV/b.mkv"], what="both encoded", agent=agent)

    (tmp_path / "tv").rename(tmp_path / "tv-unmounted")  # what an unmounted disk looks like
    wait_for(lambda: agent.events("library paused"), what="the library paused", agent=agent)
    assert "source folder missing" in str(agent.events("library paused")[0]["reason"])
    (tmp_path / "tv-unmounted").rename(tmp_path / "tv")
    wait_for(lambda: agent.events("library resumed"), what="the library resumed", agent=agent)

    assert agent.stop() == 0
    assert published(tmp_path) == ["TV/a.mkv", "TV/b.mkv"]
    assert len(agent.events("job started")) == 2  # nothing deleted, nothing encoded again
    assert jobs_by_state(tmp_path) == {"done": ["a.mkv", "b.mkv"]}
