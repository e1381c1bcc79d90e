"""agent.watch on real folders with real inotify: each change marks the right folder dirty,
and a burst of changes asks for one pass, within a second.

The watcher runs on the test's own event loop, as in the agent; every wait polls with a deadline.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from agent.watch import Watcher
from tests.support.waiting import wait_for_async

DEADLINE = 5.0
REPO = Path(__file__).resolve().parents[2]


until = partial(wait_for_async, deadline=DEADLINE, interval=0.02)


class Recorder:
    """What the watcher reported: dirty folders by library, bursts (loop times) and log lines."""

    def __init__(self) -> None:
        self.dirty: dict[str, set[str]] = {}
        self.bursts: list[float] = []
        self.logged: list[tuple[str, str, dict[str, object]]] = []

    def mark(self, library: str, folders: set[str]) -> None:
        self.dirty.setdefault(library, set()).update(folders)

    def burst(self) -> None:
        self.bursts.append(time.monotonic())

    # the structlog-like logger the watcher is given
    def info(self, event: str, **fields: object) -> None:
        self.logged.append(("info", event, fields))

    def warning(self, event: str, **fields: object) -> None:
        self.logged.append(("warning", event, fields))

    def error(self, event: str, **fields: object) -> None:
        self.logged.append(("error", event, fields))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    library = tmp_path / "tv"
    (library / "Show A" / "Season 1").mkdir(parents=True)
    (library / "Show B").mkdir(parents=True)
    (library / "Show A" / "Season 1" / "e1.mkv").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    return library


@pytest.fixture
async def watched(tree: Path) -> AsyncIterator[tuple[Watcher, Recorder]]:
    recorder = Recorder()
    watcher = Watcher(mark=recorder.mark, on_burst=recorder.burst, log=recorder)
    await watcher.watch({"tv": tree})
    try:
        yield watcher, recorder
    finally:
        watcher.close()


async def test_a_library_on_a_local_disk_is_watched_folder_by_folder(watched: tuple[Watcher, Recorder]) -> None:
    watcher, recorder = watched
    status = watcher.status()["tv"]
    assert (status.mode, status.reason, status.folders) == ("events", None, 4)  # tv, Show A, Season 1, Show B
    assert [event for _, event, _ in recorder.logged] == ["library watched for changes"]


def _write(path: Path, data: bytes = b"video") -> None:
    path.write_bytes(data)


def _move_in(tree: Path, rel_path: str) -> None:
    made = tree.parent / "outside" / "in.mkv"
    made.write_bytes(b"x")
    os.rename(made, tree / rel_path)


@pytest.mark.parametrize(
    "change, folders",
    [
        pytest.param(lambda t: _write(t / "new.mkv"), {""}, id="create-at-the-top"),
        pytest.param(
            lambda t: _write(t / "Show A" / "Season 1" / "e2.mkv"), {"Show A/Season 1"}, id="close-after-write"
        ),
        pytest.param(
            lambda t: (t / "Show A" / "Season 1" / "e1.mkv").open("ab").write(b"more"),
            {"Show A/Season 1"},
            id="append",
        ),
        pytest.param(lambda t: _move_in(t, "Show B/in.mkv"), {"Show B"}, id="move-in"),
        pytest.param(
            lambda t: os.rename(t / "Show A" / "Season 1" / "e1.mkv", t.parent / "outside" / "e1.mkv"),
            {"Show A/Season 1"},
            id="move-out",
        ),
        pytest.param(lambda t: (t / "Show A" / "Season 1" / "e1.mkv").unlink(), {"Show A/Season 1"}, id="delete"),
        pytest.param(lambda t: os.chmod(t / "Show B", 0o700), {"Show B"}, id="chmod-a-folder"),
        pytest.param(lambda t: (t / "Show B").rmdir(), {"", "Show B"}, id="rmdir"),
        pytest.param(
            lambda t: os.rename(t / "Show A" / "Season 1" / "e1.mkv", t / "Show B" / "e1.mkv"),
            {"Show A/Season 1", "Show B"},
            id="move-between-folders",
        ),
    ],
)
async def test_each_change_marks_its_folder_and_asks_for_one_pass(
    watched: tuple[Watcher, Recorder], tree: Path, change: Callable[[Path], object], folders: set[str]
) -> None:
    _, recorder = watched
    started = time.monotonic()
    change(tree)
    await until(lambda: folders <= recorder.dirty.get("tv", set()) and recorder.bursts, what=f"{folders} marked")
    assert recorder.bursts[0] - started < 1.0, "the pass was asked for more than a second after the change"
    assert recorder.dirty["tv"] <= folders | {""}, "folders that did not change were marked"


async def test_a_new_folder_is_watched_and_a_file_written_in_it_marks_it(
    watched: tuple[Watcher, Recorder], tree: Path
) -> None:
    watcher, recorder = watched
    (tree / "Show C" / "Season 1").mkdir(parents=True)
    await until(lambda: watcher.status()["tv"].folders == 6, what="the new folders watched")
    assert {"", "Show C", "Show C/Season 1"} <= recorder.dirty["tv"]
    recorder.dirty.clear()
    (tree / "Show C" / "Season 1" / "e1.mkv").write_bytes(b"x")
    await until(lambda: "Show C/Season 1" in recorder.dirty.get("tv", set()), what="the new folder's file marked")


async def test_a_folder_moved_in_is_watched_whole_and_one_moved_out_is_dropped(
    watched: tuple[Watcher, Recorder], tree: Path
) -> None:
    watcher, recorder = watched
    outside = tree.parent / "outside"
    (outside / "Show D" / "Season 1").mkdir(parents=True)
    os.rename(outside / "Show D", tree / "Show D")
    await until(lambda: watcher.status()["tv"].folders == 6, what="the moved-in folders watched")
    recorder.dirty.clear()
    (tree / "Show D" / "Season 1" / "e1.mkv").write_bytes(b"x")
    await until(lambda: "Show D/Season 1" in recorder.dirty.get("tv", set()), what="a file in the moved-in tree")

    os.rename(tree / "Show A", outside / "Show A")
    await until(lambda: watcher.status()["tv"].folders == 4, what="the moved-out folders dropped")
    recorder.dirty.clear()
    (outside / "Show A" / "Season 1" / "e9.mkv").write_bytes(b"x")
    (tree / "marker.mkv").write_bytes(b"x")  # a change that is still ours, to know events got through
    await until(lambda: "" in recorder.dirty.get("tv", set()), what="the marker")
    assert recorder.dirty["tv"] == {""}, "a folder moved out of the library still reports changes"


async def test_a_burst_of_a_thousand_files_asks_for_one_pass(watched: tuple[Watcher, Recorder], tree: Path) -> None:
    _, recorder = watched
    season = tree / "Show A" / "Season 1"
    for number in range(1000):
        (season / f"copy {number:04d}.mkv").write_bytes(b"x")
    await until(lambda: recorder.bursts, what="a pass asked for")
    (tree / "Show B" / "marker.mkv").write_bytes(b"x")  # after the burst: a pass of its own
    await until(lambda: "Show B" in recorder.dirty.get("tv", set()) and len(recorder.bursts) >= 2, what="the marker")
    assert len(recorder.bursts) == 2, f"{len(recorder.bursts)} passes asked for: one for the burst, one for the marker"


async def test_the_root_renamed_away_polls_until_it_is_back(watched: tuple[Watcher, Recorder], tree: Path) -> None:
    watcher, recorder = watched
    away = tree.parent / "tv-away"
    os.rename(tree, away)
    await until(lambda: watcher.status()["tv"].mode == "polling", what="the library polling")
    status = watcher.status()["tv"]
    assert status.folders == 0
    assert status.reason is not None and "source folder" in status.reason
    assert "" in recorder.dirty["tv"]
    await until(lambda: recorder.bursts, what="a pass asked for")  # which pauses the library
    os.rename(away, tree)
    await watcher.refresh()  # as after each pass
    assert watcher.status()["tv"] == watcher.status()["tv"].__class__("events", None, 4)
    (tree / "back.mkv").write_bytes(b"x")
    recorder.dirty.clear()
    (tree / "Show B" / "back.mkv").write_bytes(b"x")
    await until(lambda: "Show B" in recorder.dirty.get("tv", set()), what="a change after the root came back")


async def test_a_disk_mounted_over_the_source_is_watched_anew(tmp_path: Path) -> None:
    source = tmp_path / "tv"
    source.mkdir()
    recorder = Recorder()
    watcher = Watcher(mark=recorder.mark, on_burst=recorder.burst, log=recorder)
    await watcher.watch({"tv": source})
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(source)], check=True)
    try:
        await watcher.refresh()
        (source / "Show").mkdir()
        await until(lambda: "" in recorder.dirty.get("tv", set()), what="a change on the new mount")
        await until(lambda: watcher.status()["tv"].folders == 2, what="the new mount's folders watched")
    finally:
        watcher.close()
        subprocess.run(["umount", str(source)], check=True)


async def test_a_queue_overflow_marks_every_folder_of_the_library(tree: Path) -> None:
    # A real overflow: a queue of 16 events, made by lowering the system-wide size only while
    # this watcher's inotify instance is created (the kernel reads it then).
    limit = Path("/proc/sys/fs/inotify/max_queued_events")
    before = limit.read_text()
    recorder = Recorder()
    limit.write_text("16")
    try:
        watcher = Watcher(mark=recorder.mark, on_burst=recorder.burst, log=recorder)
    finally:
        limit.write_text(before)
    try:
        await watcher.watch({"tv": tree})
        for number in range(64):  # no await: the loop reads nothing until the queue has overflowed
            (tree / f"f{number}.mkv").write_bytes(b"x")
        await until(lambda: recorder.dirty.get("tv") == {"", "Show A", "Show A/Season 1", "Show B"}, what="all marked")
        await until(lambda: recorder.bursts, what="a pass asked for")
    finally:
        watcher.close()


async def test_stopping_releases_the_inotify_descriptor(tree: Path) -> None:
    def inotify_descriptors() -> int:
        return sum(1 for fd in os.listdir("/proc/self/fd") if "inotify" in _link(f"/proc/self/fd/{fd}"))

    before = inotify_descriptors()
    recorder = Recorder()
    watcher = Watcher(mark=recorder.mark, on_burst=recorder.burst, log=recorder)
    await watcher.watch({"tv": tree})
    assert inotify_descriptors() == before + 1
    watcher.close()
    assert inotify_descriptors() == before


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


async def test_a_reload_watches_added_libraries_and_drops_removed_ones(tree: Path, tmp_path: Path) -> None:
    movies = tmp_path / "movies"
    (movies / "A").mkdir(parents=True)
    recorder = Recorder()
    watcher = Watcher(mark=recorder.mark, on_burst=recorder.burst, log=recorder)
    try:
        await watcher.watch({"tv": tree})
        await watcher.watch({"movies": movies})
        assert set(watcher.status()) == {"movies"}
        assert watcher.status()["movies"].folders == 2
        (tree / "gone.mkv").write_bytes(b"x")
        (movies / "A" / "new.mkv").write_bytes(b"x")
        await until(lambda: "A" in recorder.dirty.get("movies", set()), what="the added library's change")
        assert "tv" not in recorder.dirty
    finally:
        watcher.close()


WATCH_LIMIT_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from agent.watch import Watcher

class Log:
    lines = []
    def info(self, event, **fields): self.lines.append(["info", event, fields])
    def warning(self, event, **fields): self.lines.append(["warning", event, fields])
    def error(self, event, **fields): self.lines.append(["error", event, fields])

async def main():
    log = Log()
    watcher = Watcher(mark=lambda *a: None, on_burst=lambda: None, log=log)
    await watcher.watch({"big": Path(sys.argv[1]), "small": Path(sys.argv[2])})
    await watcher.refresh()
    await watcher.refresh()
    watches = sum(line.startswith("inotify wd:") for line in open(f"/proc/self/fdinfo/{watcher.fileno()}"))
    status = {name: [s.mode, s.reason, s.folders] for name, s in watcher.status().items()}
    print(json.dumps({"status": status, "log": log.lines, "watches": watches}))
    watcher.close()

asyncio.run(main())
"""


def run_with_inotify_limit(limit: str, value: int, script: str, *folders: Path) -> dict[str, Any]:
    """Run script on folders in a user namespace of its own whose /proc/sys/user/LIMIT is value (its
    root may lower it for that namespace alone); return the JSON report it prints."""
    arguments = " ".join(f'"${number}"' for number in range(1, len(folders) + 1))
    shell = f'echo {value} > /proc/sys/user/{limit} && exec {sys.executable} -c "$0" {arguments}'
    done = subprocess.run(
        ["unshare", "--user", "--map-root-user", "bash", "-c", shell, script, *map(str, folders)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_running_out_of_inotify_watches_makes_that_library_poll_and_says_so_once(tmp_path: Path) -> None:
    # The real limit, run out for real: in a user namespace of its own, whose root may lower
    # max_inotify_watches for that namespace alone, the watcher meets ENOSPC from the kernel.
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is missing")
    big, small = tmp_path / "big", tmp_path / "small"
    for number in range(12):
        (big / f"Show {number}").mkdir(parents=True)
    (small / "Show").mkdir(parents=True)
    report = run_with_inotify_limit("max_inotify_watches", 6, WATCH_LIMIT_SCRIPT, big, small)
    mode, reason, folders = report["status"]["big"]
    assert (mode, folders) == ("polling", 0)
    assert "fs.inotify.max_user_watches" in reason and "sysctl" in reason
    assert report["status"]["small"] == ["events", None, 2]  # one library's shortage is not the others'
    assert report["watches"] == 2, "the big library's partial watches were not released"
    said = [line for line in report["log"] if line[1] == "library polls for changes"]
    assert len(said) == 1 and said[0][2]["library"] == "big", report["log"]


NO_INSTANCE_SCRIPT = """
import asyncio, json, sys
from pathlib import Path
from agent.watch import Watcher

class Log:
    lines = []
    def info(self, event, **fields): self.lines.append(["info", event, fields])
    def warning(self, event, **fields): self.lines.append(["warning", event, fields])

async def main():
    watcher = Watcher(mark=lambda *a: None, on_burst=lambda: None, log=Log())
    await watcher.watch({"tv": Path(sys.argv[1])})
    await watcher.refresh()
    status = {name: [s.mode, s.reason, s.folders] for name, s in watcher.status().items()}
    print(json.dumps({"status": status, "log": Log.lines}))
    watcher.close()

asyncio.run(main())
"""


def test_no_inotify_instance_to_be_had_makes_every_library_poll_and_names_the_sysctl(tree: Path) -> None:
    # max_user_instances run out for real, in a user namespace whose limit is 0: inotify_init1 says EMFILE.
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is missing")
    report = run_with_inotify_limit("max_inotify_instances", 0, NO_INSTANCE_SCRIPT, tree)
    mode, reason, folders = report["status"]["tv"]
    assert (mode, folders) == ("polling", 0)
    assert "fs.inotify.max_user_instances" in reason
    assert [line[1] for line in report["log"]] == ["library polls for changes"]
