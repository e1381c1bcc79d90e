"""`hb2r run` as a real process, with the real HandBrakeCLI, on clips made with ffmpeg.

Each test writes a config into its own tmp_path, starts the agent, drops or changes files,
and polls (with a deadline, never a fixed sleep) for what an operator would look at: the
archive, `hb2r jobs`, `hb2r plan`, the log.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 120.0
PRESET = "Very Fast 480p30"


def make_clip(path: Path, *, seconds: float, size: str = "320x180") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={size}:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            str(seconds),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-shortest",
            str(path),
        ],
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "one": make_clip(folder / "one.mkv", seconds=1),
        "two": make_clip(folder / "two.mkv", seconds=2),
        "three": make_clip(folder / "three.mkv", seconds=3),
        "long": make_clip(folder / "long.mkv", seconds=30, size="640x360"),
    }


def write_config(
    root: Path,
    *,
    extra_limits: str = "",
    attempts: int = 2,
    stable_after: str = "1s",
    max_jobs: str = "1",
    port: int | None = None,
    users: str = "",
) -> Path:
    """Write a config for a library tv under root (one encode at a time, the API on a free
    loopback port unless given); users are `users:` list lines. Return its path."""
    for folder in ("tv", "archive"):
        (root / folder).mkdir(exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        f"""version: 1
paths: {{archive: archive, state_dir: state}}
libraries:
  - {{name: tv, source: tv, output: TV, preset: tv, stable_after: {stable_after}}}
presets:
  tv: {{handbrake: "{PRESET}", container: mkv}}
scan: {{interval: 1s}}
limits:
  cpu_percent: 100
  memory_percent: 100
  min_free_memory: 64MiB
  min_free_disk: 1MiB
  max_jobs: {max_jobs}
{extra_limits}
retry: {{attempts: {attempts}, backoff: 1s, max_backoff: 2s}}
auth: {{jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4}}
server: {{listen: "127.0.0.1:{port or free_port()}"}}
"""
        + (f"users:\n{users}" if users else "")
    )
    return config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Agent:
    """One `hb2r run` process and its log."""

    def __init__(self, config: Path) -> None:
        self.config = config
        self.log_path = config.parent / "agent.log"
        self.log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent", "run", str(config)],
            cwd=REPO,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log_lines(self) -> list[dict[str, object]]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return lines

    def events(self, name: str) -> list[dict[str, object]]:
        return [line for line in self.log_lines() if line.get("event") == name]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.log_file.close()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[[Path], Agent]]:
    agents: list[Agent] = []

    def starter(config: Path) -> Agent:
        agent = Agent(config)
        agents.append(agent)
        return agent

    yield starter
    for agent in agents:
        if agent.process.poll() is None:
            agent.process.kill()
            agent.process.wait()
        agent.log_file.close()


def wait_for(
    condition: Callable[[], object], *, what: str, agent: Agent | None = None, deadline: float = DEADLINE
) -> object:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        if agent is not None and agent.process.poll() is not None:
            tail = agent.log_path.read_text()[-3000:]
            raise AssertionError(f"agent exited ({agent.process.returncode}) while waiting for {what}:\n{tail}")
        time.sleep(0.2)
    log = agent.log_path.read_text()[-3000:] if agent else ""
    raise AssertionError(f"timed out waiting for {what}\n{log}")


def wait_for_temp_file(root: Path, agent: Agent) -> None:
    """Return once an encode is writing its temp file (HandBrakeCLI is mid-encode)."""
    partial = root / "archive" / ".hb2r-partial"
    wait_for(lambda: partial.is_dir() and any(partial.iterdir()), what="an encode writing its temp file", agent=agent)


def jobs_by_state(root: Path) -> dict[str, list[str]]:
    database = root / "state" / "hb2r.db"
    if not database.exists():
        return {}
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as connection:
        rows = connection.execute("SELECT state, rel_path FROM jobs").fetchall()
    result: dict[str, list[str]] = {}
    for state, rel_path in rows:
        result.setdefault(state, []).append(rel_path)
    return result


def archive_files(root: Path) -> list[str]:
    archive = root / "archive"
    return sorted(str(path.relative_to(archive)) for path in archive.rglob("*") if path.is_file())


def published(root: Path) -> list[str]:
    return [name for name in archive_files(root) if not name.startswith(".hb2r-partial")]


def checksums(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def hb2r(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", *arguments], cwd=REPO, capture_output=True, text=True, check=False
    )


def copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(source.read_bytes())


def test_a_nested_library_is_encoded_once_and_then_in_sync(
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
) -> None:
    config = write_config(tmp_path)
    copy(clips["one"], tmp_path / "tv/Show A/Season 1/A - S01E01.mkv")
    copy(clips["two"], tmp_path / "tv/Show A/Season 1/A - S01E02.mkv")
    copy(clips["one"], tmp_path / "tv/Show B/B - S01E01.mp4")
    sources = checksums(tmp_path / "tv")
    agent = start(config)

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


def started_paths(agent: Agent) -> list[object]:
    return [event.get("path") for event in agent.events("job started")]


def test_a_file_still_being_written_is_not_started_until_it_is_stable(
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
) -> None:
    config = write_config(tmp_path, stable_after="2s")
    agent = start(config)
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
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
) -> None:
    config = write_config(tmp_path, attempts=2)
    copy(clips["one"], tmp_path / "tv/good.mkv")
    whole = clips["three"].read_bytes()
    (tmp_path / "tv/truncated.mkv").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "tv/noise.mkv").write_bytes(os.urandom(200_000))
    sources = checksums(tmp_path / "tv")
    agent = start(config)

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
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
) -> None:
    config = write_config(tmp_path)
    copy(clips["long"], tmp_path / "tv/long.mkv")
    sources = checksums(tmp_path / "tv")
    first = start(config)
    wait_for_temp_file(tmp_path, first)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert published(tmp_path) == []  # nothing half-written where Resilio would see it
    assert jobs_by_state(tmp_path) == {"running": ["long.mkv"]}

    second = start(config)
    wait_for(lambda: published(tmp_path) == ["TV/long.mkv"], what="the job finished after restart", agent=second)
    assert second.events("job requeued")
    assert second.stop() == 0
    assert archive_files(tmp_path) == ["TV/long.mkv"]  # exactly one output, temp cleaned
    assert jobs_by_state(tmp_path) == {"done": ["long.mkv"]}
    assert checksums(tmp_path / "tv") == sources


def test_sigterm_mid_encode_exits_cleanly_and_requeues_the_job(
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
) -> None:
    config = write_config(tmp_path)
    copy(clips["long"], tmp_path / "tv/long.mkv")
    agent = start(config)
    wait_for_temp_file(tmp_path, agent)

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
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
) -> None:
    config = write_config(tmp_path)
    copy(clips["one"], tmp_path / "tv/Show/old name.mkv")
    copy(clips["two"], tmp_path / "tv/Show/other.mkv")
    agent = start(config)
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
    duration = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            str(tmp_path / "archive/TV/Show/other.mkv"),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert abs(float(duration) - 3.0) < 0.5  # the new three-second content, not the old two


def test_an_invalid_config_edit_keeps_the_old_config_and_a_valid_one_applies(
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
) -> None:
    config = write_config(tmp_path)
    agent = start(config)
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
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
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
    agent = start(config)

    wait_for(lambda: published(tmp_path) == ["TV/episode.mkv"], what="the good library encoded", agent=agent)
    errors = agent.events("library cannot encode")
    assert [event["library"] for event in errors] == ["movies"]
    assert "No Such Preset 9000p" in str(errors[0]["reason"])
    assert agent.stop() == 0
    assert published(tmp_path) == ["TV/episode.mkv"]
    assert "film.mkv" not in started_paths(agent)


def test_a_vanished_source_folder_pauses_its_library_and_keeps_every_output(
    tmp_path: Path, clips: dict[str, Path], start: Callable[[Path], Agent]
) -> None:
    config = write_config(tmp_path)
    copy(clips["one"], tmp_path / "tv/a.mkv")
    copy(clips["two"], tmp_path / "tv/b.mkv")
    agent = start(config)
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
