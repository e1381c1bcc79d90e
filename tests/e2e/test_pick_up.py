"""New files are picked up as they arrive, not at the next timed pass: a real `hb2r run` with
`scan.interval: 1h`, real inotify, a clip made with ffmpeg; and a library on a FUSE mount
(bindfs), where other machines' changes send no event, polls and says so."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.agent_process import AgentProcess
from tests.support.clips import make_clip
from tests.support.e2e_api import VIEWER_PASSWORD, Client, api_config
from tests.support.outcomes import jobs_by_state
from tests.support.ports import free_port
from tests.support.waiting import wait_for_async

STABLE_AFTER = 1.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "one.mkv", seconds=1)


def hourly(config: Path) -> Path:
    """The test config, with passes on the timer once an hour only."""
    config.write_text(config.read_text().replace("scan: {interval: 1s}", "scan: {interval: 1h}"))
    return config


async def library_status(api: Client, token: str) -> dict[str, Any] | None:
    status, body = await api.get("/api/status", token)
    if status != 200 or body.get("plan") is None or body["libraries"][0]["watch"] is None:
        return None  # not until the first pass is done and the library has been looked at
    return dict(body["libraries"][0])


async def after_the_first_pass(
    http: aiohttp.ClientSession, port: int, agent: AgentProcess
) -> tuple[Client, str, dict[str, Any]]:
    """Wait for the agent's API, log in as the viewer and wait for the first pass; return the client,
    the viewer's token and the library's status."""
    api = Client(http, port)
    await api.healthy(agent)
    token = await api.login("viewer", VIEWER_PASSWORD)
    library = await wait_for_async(
        lambda: library_status(api, token), what="the first pass", agent=agent, deadline=30.0
    )
    return api, token, library


async def test_a_clip_copied_in_is_queued_within_stable_after_plus_two_seconds(
    tmp_path: Path, clip: Path, agents: Callable[[Path], AgentProcess]
) -> None:
    port = free_port()
    agent = agents(hourly(api_config(tmp_path, port=port)))
    async with aiohttp.ClientSession() as http:
        api, token, library = await after_the_first_pass(http, port, agent)
        assert library["watch"] == {"mode": "events", "reason": None, "folders": 1}

        (tmp_path / "tv" / "Show").mkdir()
        await wait_for_async(lambda: _folders(api, token, 2), what="the new folder watched", agent=agent, deadline=5.0)
        shutil.copyfile(clip, tmp_path / "tv" / "Show" / "one.mkv")
        copied = time.monotonic()
        deadline = copied + STABLE_AFTER + 2.0
        while not any(
            "Show/one.mkv" in jobs_by_state(tmp_path).get(state, []) for state in ("queued", "running", "done")
        ):
            assert time.monotonic() < deadline, (
                f"not queued within stable_after + 2 s:\n{agent.log_path.read_text()[-3000:]}"
            )
            await asyncio.sleep(0.05)
    assert [line["library"] for line in agent.events("library watched for changes")] == ["tv"]
    assert agent.events("library polls for changes") == []


async def _folders(api: Client, token: str, count: int) -> bool:
    library = await library_status(api, token)
    return library is not None and library["watch"]["folders"] == count


@pytest.fixture
def fuse_library(tmp_path: Path) -> Iterator[Path]:
    """tmp_path/tv as a bindfs (FUSE) view of tmp_path/disk; unmounted at the end."""
    if shutil.which("bindfs") is None:
        pytest.skip("bindfs is missing (Debian package bindfs; make system-packages)")
    (tmp_path / "disk").mkdir()
    (tmp_path / "tv").mkdir()
    subprocess.run(["bindfs", str(tmp_path / "disk"), str(tmp_path / "tv")], check=True)
    try:
        yield tmp_path / "tv"
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "tv")], check=False)


async def test_a_library_on_a_fuse_mount_polls_and_says_why_once(
    tmp_path: Path, fuse_library: Path, agents: Callable[[Path], AgentProcess]
) -> None:
    port = free_port()
    agent = agents(api_config(tmp_path, port=port))  # passes every second: polling finds the file
    async with aiohttp.ClientSession() as http:
        api, token, library = await after_the_first_pass(http, port, agent)
        watch = library["watch"]
        assert (watch["mode"], watch["folders"]) == ("polling", 0)
        assert "fuse" in watch["reason"] and "no inotify events" in watch["reason"]
        passes: set[str] = set()

        async def three_passes() -> bool:
            status, body = await api.get("/api/status", token)
            if status == 200 and body.get("plan"):
                passes.add(body["plan"]["finished_at"])
            return len(passes) >= 3

        await wait_for_async(three_passes, what="three passes", agent=agent, deadline=30.0)
    said = agent.events("library polls for changes")
    assert len(said) == 1 and said[0]["library"] == "tv", said


async def test_a_reload_watches_an_added_library_and_forgets_a_removed_one(
    tmp_path: Path, clip: Path, agents: Callable[[Path], AgentProcess]
) -> None:
    port = free_port()
    config = hourly(api_config(tmp_path, port=port))
    agent = agents(config)
    async with aiohttp.ClientSession() as http:
        api, token, _ = await after_the_first_pass(http, port, agent)

        (tmp_path / "movies" / "Film").mkdir(parents=True)
        text = config.read_text()
        tv_line = next(line for line in text.splitlines() if "{name: tv," in line)
        movies_line = "  - {name: movies, source: movies, output: Movies, preset: tv, stable_after: 1s}"
        config.write_text(text.replace(tv_line, movies_line))
        agent.process.send_signal(signal.SIGHUP)

        async def movies_watched() -> dict[str, Any] | None:
            status, body = await api.get("/api/status", token)
            libraries = {library["name"]: library for library in body["libraries"]} if status == 200 else {}
            watch = libraries.get("movies", {}).get("watch")
            return watch if watch and set(libraries) == {"movies"} else None

        watch = await wait_for_async(movies_watched, what="the added library watched", agent=agent, deadline=30.0)
        assert watch == {"mode": "events", "reason": None, "folders": 2}
        shutil.copyfile(clip, tmp_path / "movies" / "Film" / "film.mkv")
        copied = time.monotonic()
        while not any("Film/film.mkv" in paths for paths in jobs_by_state(tmp_path).values()):
            assert time.monotonic() < copied + STABLE_AFTER + 2.0, agent.log_path.read_text()[-3000:]
            await asyncio.sleep(0.05)
