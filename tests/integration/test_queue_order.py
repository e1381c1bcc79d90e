"""The queue's order as the real dispatcher follows it: `order:` per library and an admin's front.

Real clips (ffmpeg), the real HandBrakeCLI and dispatcher, real SQLite; one slot, so the job
that starts is the one the order picks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tests.support.archive import require_tools
from tests.support.clips import make_clip
from tests.support.dispatch import Agent, until
from tests.support.dispatch import write_config as write_dispatch_config


def write_config(root: Path, *, order: str) -> Path:
    """Libraries tv (taken in `order`) and movies, one encode at a time."""
    return write_dispatch_config(root, options={"tv": f"order: {order}"}, max_jobs=1)


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
