"""The queue's order as the real dispatcher follows it: `order:` per library and an admin's front.

Real clips (ffmpeg), the real HandBrakeCLI and dispatcher, real SQLite; one slot, so the job
that starts is the one the order picks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from agent import logs
from agent.engine import reconcile
from agent.store import jobs
from agent.wording import human_size
from tests.support.archive import require_tools
from tests.support.clips import make_clip
from tests.support.dispatch import Agent, until
from tests.support.dispatch import write_config as write_dispatch_config
from tests.support.media_clips import make_tiny_hevc
from tests.support.plan_cli import run_plan


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


async def test_order_saving_encodes_the_largest_estimated_saving_first_as_the_plan_estimates(
    tmp_path: Path, dispatchers: Callable[[Path], Agent]
) -> None:
    require_tools()
    config = write_config(tmp_path, order="saving")
    agent = dispatchers(config)
    # The largest source, but HEVC (a high quality): no saving expected.
    hevc = make_tiny_hevc(tmp_path / "tv" / "a-hevc.mkv", size="320x180", seconds=4, crf=4)
    short = make_clip(tmp_path / "tv" / "b-short.mkv", seconds=1)
    long = make_clip(tmp_path / "tv" / "c-long.mkv", seconds=4)
    assert hevc.stat().st_size > long.stat().st_size > short.stat().st_size  # `largest` would start the HEVC

    await reconcile(agent.state, log=logs.get_logger("test"))  # the real pass: probes, estimates and queues
    lines = run_plan(config).stdout.splitlines()
    agent.dispatcher.tick()

    # No encode finished yet: H.264 is expected to save 40% of its size, HEVC nothing (agent.saving_estimate).
    expected = {
        "a-hevc.mkv": 0,
        "b-short.mkv": round(short.stat().st_size * 0.4),
        "c-long.mkv": round(long.stat().st_size * 0.4),
    }
    queued = {job.rel_path: job for job in jobs.list_jobs(agent.state.store.database)}
    assert sorted(queued) == sorted(expected)
    for name, saving in expected.items():  # the same estimate as the job's (its order) and the plan's
        line = next((line for line in lines if line.startswith("  + ") and f" {name} -> " in line), "\n".join(lines))
        assert f"(new; est. saving {human_size(saving)}" in line, line
    assert f"Estimated saving: {human_size(sum(expected.values()))} (3 files to encode)" in lines
    assert list(agent.dispatcher.running) == [queued["c-long.mkv"].id]  # the largest estimated saving first
    await until(lambda: not agent.dispatcher.running, what="the encode to end", tick=agent.dispatcher)
    assert agent.job(queued["c-long.mkv"].id).state == "done"
    agent.dispatcher.tick()
    assert list(agent.dispatcher.running) == [queued["b-short.mkv"].id]  # then the next, the HEVC last
