"""`hb2r run` as a real process, with the real HandBrakeCLI, on clips made with ffmpeg.

Each test writes a config into its own tmp_path, starts the agent, drops or changes files,
and polls (with a deadline, never a fixed sleep) for what an operator would look at: the
archive, `hb2r jobs`, `hb2r plan`, the log.
"""

from __future__ import annotations

import hashlib
import json
import signal
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


def write_config(root: Path, *, extra_limits: str = "", attempts: int = 2, stable_after: str = "1s") -> Path:
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
  max_jobs: 1
{extra_limits}
retry: {{attempts: {attempts}, backoff: 1s, max_backoff: 2s}}
auth: {{jwt_secret_file: state/jwt.secret}}
"""
    )
    return config


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
