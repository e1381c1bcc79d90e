"""The queue's order as the real dispatcher follows it: `order:` per library and an admin's front.

Real clips (ffmpeg), the real HandBrakeCLI and dispatcher, real SQLite; one slot, so the job
that starts is the one the order picks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.support.archive import PRESET, require_tools
from tests.support.clips import make_clip
from tests.support.dispatch import Agent, until


def write_config(root: Path, *, order: str) -> Path:
    for folder in ("tv", "movies", "archive"):
        (root / folder).mkdir(exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        f"  - {{name: tv, source: tv, output: TV, preset: p, stable_after: 0s, order: {order}}}\n"
        "  - {name: movies, source: movies, output: MOVIES, preset: p, stable_after: 0s}\n"
        f"presets: {{p: {{handbrake: '{PRESET}'}}}}\n"
        "limits: {cpu_percent: 100, memory_percent: 100, min_free_memory: 1MiB, min_free_disk: 1MiB, max_jobs: 1}\n"
        "auth: {jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4}\n"
    )
    return config


async def test_the_dispatcher_starts_the_largest_source_first_where_the_library_asks(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    require_tools()
    agent = dispatchers(write_config(tmp_path, order="largest"))
    make_clip(tmp_path / "tv" / "short.mkv", seconds=1)
    make_clip(tmp_path / "tv" / "long.mkv", seconds=4)
    agent.queue("tv", "short.mkv")
    long = agent.queue("tv", "long.mkv")  # queued last: oldest-first would start short.mkv

    agent.dispatcher.tick()

    assert list(agent.dispatcher.running) == [long.id]


async def test_a_job_an_admin_moved_to_the_front_starts_before_every_library(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    require_tools()
    agent = dispatchers(write_config(tmp_path, order="oldest"))
    for name in ("a.mkv", "b.mkv"):
        make_clip(tmp_path / "tv" / name, seconds=1)
    make_clip(tmp_path / "movies" / "film.mkv", seconds=1)
    agent.queue("tv", "a.mkv")
    agent.queue("tv", "b.mkv")
    film = agent.queue("movies", "film.mkv")  # the last library, queued last

    agent.state.store.move_to_front(film.id, now=datetime.now(UTC))
    agent.dispatcher.tick()

    assert list(agent.dispatcher.running) == [film.id]
    await until(lambda: not agent.dispatcher.running, what="the encode to end", tick=agent.dispatcher)
