"""Incremental correctness: after every kind of change, the incremental pass's plan is a full pass's.

A tree of 3,000 files in 30 folders; some files are recorded as encoded (outputs in the
archive), so that renames, drift and changed content are planned too. Each step makes one
kind of change and runs a pass (tests/integration/incremental_pass.py) that walks in full and
incrementally, plans both against the same ledger and records the incremental walk, as the
agent would, then plans it batch by batch from the store; the two observations and the three
plans must be equal.

The passes run on a clock an hour ahead of the files' (the tree and its changes look settled),
except for the file still being written, whose mtime the test sets to that clock: the tree's
ctimes, which a test cannot set back, then say "long ago" without waiting for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from agent import incremental_scan
from agent.archive_walk import walk_archive
from agent.config import load_config
from agent.config.models import Config
from agent.domain import LedgerEntry
from agent.identity import output_path
from agent.incremental_archive import scan_archive_incrementally
from agent.incremental_scan import Missed, scan_in_full, scan_incrementally
from agent.scan import fingerprint
from agent.store.sqlite import SqliteStore, open_store

REPO = Path(__file__).resolve().parents[2]
HELPER = Path(__file__).with_name("incremental_pass.py")
S = 1_000_000_000
AHEAD_NS = [3600 * S]  # how far the passes' clock is ahead of the files'; a step may move it on
SHOWS, EPISODES = 30, 100

pytestmark = pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="as root, an unreadable folder needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE",
)


def clock() -> int:
    return time.time_ns() + AHEAD_NS[0]


@pytest.fixture(autouse=True)
def _clock_an_hour_ahead() -> None:
    AHEAD_NS[0] = 3600 * S


def episode(show: int, number: int) -> str:
    return f"Show {show:02d}/Season 1/Show {show:02d} - S01E{number:03d}.mkv"


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """The tree, its config and a state where Show 00's episodes are encoded; return the config."""
    source = tmp_path / "tv"
    for show in range(SHOWS):
        (source / f"Show {show:02d}" / "Season 1").mkdir(parents=True)
        for number in range(EPISODES):
            (source / episode(show, number)).write_text(f"{episode(show, number)}\n")
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        json.dumps(
            {
                "version": 1,
                "paths": {"archive": str(tmp_path / "archive"), "state_dir": str(tmp_path / "state")},
                "libraries": [{"name": "tv", "source": str(source), "output": "TV", "preset": "tv"}],
                "presets": {"tv": {"handbrake": "Fast 1080p30"}},
            }
        )
    )
    config = load_config(config_path).config
    [tv] = config.libraries
    store = open_store(config.paths.state_dir)
    try:
        for number in range(10):
            rel_path = episode(0, number)
            info = (source / rel_path).stat()
            output = output_path(tv, config.preset_for(tv), rel_path)
            entry = LedgerEntry(
                "tv", rel_path, fingerprint(source / rel_path, size=info.st_size), info.st_size,
                info.st_mtime_ns, "tv-preset", output,
            )  # fmt: skip
            store.record_output(entry, encoded_at="2024-05-01T12:00:00+00:00")
            (config.paths.archive / output).parent.mkdir(parents=True, exist_ok=True)
            (config.paths.archive / output).write_bytes(b"encoded")
    finally:
        store.close()
    return config_path


def run_pass(config: Path) -> dict[str, Any]:
    """Run one pass; assert the incremental walk and plan equal the full ones; return what it printed."""
    command = [sys.executable, str(HELPER), str(config), str(clock())]
    if os.geteuid() == 0:  # bound by file modes, as any user is
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    finished = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environment, timeout=120)
    assert finished.returncode == 0, finished.stderr
    result: dict[str, Any] = json.loads(finished.stdout)
    assert result["incremental"] == result["full"]
    assert result["incremental_plan"] == result["full_plan"]
    assert result["batch_plan"] == result["full_plan"]
    return result


def test_every_kind_of_change_plans_the_same_incrementally_as_in_full(library: Path) -> None:
    source = library.parent / "tv"
    first = run_pass(library)
    assert len(first["full"]["files"]) == SHOWS * EPISODES
    assert len(first["listed"]) == 1 + 2 * SHOWS  # a first pass lists every folder

    assert run_pass(library)["listed"] == []  # nothing changed: nothing listed, nothing stat'd but folders

    (source / "Show 03" / "Season 1" / "Extra.mkv").write_text("new\n")  # create
    created = run_pass(library)
    assert created["listed"] == ["Show 03/Season 1"]
    assert any("Extra.mkv" in action for action in created["full_plan"])

    growing = source / "Show 04" / "Season 1" / "Growing.mkv"  # a copy in progress
    growing.write_text("part one\n")
    now = clock()
    os.utime(growing, ns=(now, now))
    run_pass(library)
    with growing.open("a") as handle:  # append while growing: no entry made, the folder's mtime stays
        handle.write("part two\n")
    now = clock()
    os.utime(growing, ns=(now, now))
    appended = run_pass(library)
    assert any(action.startswith("Wait(") and "Growing.mkv" in action for action in appended["full_plan"])

    replacement = source / "Show 00" / "Season 1" / "new.tmp"  # replace by rename
    replacement.write_text("a re-cut, longer than the first\n")
    os.replace(replacement, source / episode(0, 1))
    replaced = run_pass(library)
    assert any(action.startswith("Wait(") and "S01E001" in action for action in replaced["full_plan"])
    AHEAD_NS[0] += 61 * S  # stable_after (60s) later: settled, and its folder no longer listed
    settled = run_pass(library)
    assert any("TranscodeReason.CHANGED" in action for action in settled["full_plan"])
    assert run_pass(library)["listed"] == []

    os.rename(source / episode(0, 2), source / "Show 01" / "Season 1" / "Moved.mkv")  # move between folders
    moved = run_pass(library)
    assert any(action.startswith("RenameOutput(") for action in moved["full_plan"])

    (source / episode(0, 3)).unlink()  # delete
    deleted = run_pass(library)
    assert any("DriftReason.SOURCE_VANISHED" in action for action in deleted["full_plan"])

    shutil.rmtree(source / "Show 06")  # delete a whole folder
    assert run_pass(library)["listed"] == [""]

    locked = source / "Show 07" / "Season 1"  # chmod a folder unreadable
    locked.chmod(0)
    try:
        unreadable = run_pass(library)
        assert unreadable["full"]["unreadable"] == ["Show 07/Season 1"]
        run_pass(library)
    finally:
        locked.chmod(0o755)
    assert len(run_pass(library)["full"]["files"]) > len(unreadable["full"]["files"])

    source.rename(source.with_name("tv-unmounted"))  # unmount, simulated by renaming the root away
    try:
        unmounted = run_pass(library)
        assert unmounted["full"]["status"] == "missing"
    finally:
        source.with_name("tv-unmounted").rename(source)
    assert run_pass(library)["full"]["status"] == "ok"


def test_a_full_pass_finds_a_file_rewritten_in_place_which_an_incremental_pass_cannot_see(library: Path) -> None:
    run_pass(library)
    config = load_config(library).config
    [tv] = config.libraries
    rewritten = config.libraries[0].source / episode(2, 7)
    with rewritten.open("r+b") as handle:  # same size, no entry made or renamed: no folder's mtime moves
        handle.write(b"X")
    store = open_store(config.paths.state_dir)
    try:
        incremental = scan_incrementally(tv, store, now_ns=clock())
        assert incremental.listed == frozenset()
        full, missed = scan_in_full(tv, store, now_ns=clock())
    finally:
        store.close()

    assert missed == Missed(1, (episode(2, 7),))
    assert len(full.listed) == 1 + 2 * SHOWS


# --- the archive


def archive_pass(config: Config, store: SqliteStore, *, recorded_folders: tuple[str, ...] = ()) -> list[str]:
    """Walk the archive in full and incrementally, assert they agree, record; return the folders listed."""
    now_ns = clock()
    full = walk_archive(config, recorded_folders=recorded_folders, now_ns=now_ns)
    incremental = scan_archive_incrementally(config, store, recorded_folders=recorded_folders, now_ns=now_ns)
    assert incremental.observation == full.observation
    if incremental.observation.available:
        store.record_archive(folders=incremental.folders, listed=incremental.listed or {})
    return sorted(incremental.listed or {})


def test_the_archive_is_listed_only_where_it_changed_and_seen_the_same_as_in_full(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    for show in range(20):
        for number in range(50):
            output = archive / "TV" / f"Show {show:02d}" / "Season 1" / f"E{number:02d}.mkv"
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(b"encoded")
    config = Config.model_validate(
        {
            "version": 1,
            "paths": {"archive": str(archive), "state_dir": str(tmp_path / "state")},
            "libraries": [{"name": "tv", "source": str(tmp_path / "tv"), "output": "TV", "preset": "tv"}],
            "presets": {"tv": {"handbrake": "Fast 1080p30"}},
        },
        context={"base_dir": "/"},
    )
    store = open_store(config.paths.state_dir)
    try:
        assert len(archive_pass(config, store)) == 1 + 2 * 20
        assert archive_pass(config, store) == []

        partial = archive / "TV" / ".hb2r-partial" / "7.mkv"  # publish: a temp file renamed into place
        partial.parent.mkdir()
        partial.write_bytes(b"encoded")
        assert archive_pass(config, store) == ["TV"]  # the hidden folder is no output
        os.replace(partial, archive / "TV" / "Show 03" / "Season 1" / "E99.mkv")
        assert archive_pass(config, store) == ["TV/Show 03/Season 1"]

        (archive / "TV" / "Show 04" / "Season 1" / "E01.mkv").unlink()  # an output deleted
        assert archive_pass(config, store) == ["TV/Show 04/Season 1"]

        shutil.rmtree(archive / "TV" / "Show 05")  # a whole folder deleted
        assert archive_pass(config, store) == ["TV"]

        (archive / "TV").rename(archive / "Series")  # the output folder renamed: the old one is in the ledger
        assert len(archive_pass(config, store, recorded_folders=("Series",))) == 1 + 2 * 19

        archive.rename(tmp_path / "archive-unmounted")  # the archive unmounted
        try:
            archive_pass(config, store)
        finally:
            (tmp_path / "archive-unmounted").rename(archive)
        assert archive_pass(config, store, recorded_folders=("Series",)) == []
    finally:
        store.close()


def test_what_a_full_pass_finds_is_counted_over_every_page_of_folders_it_reads_the_memory_by(
    library: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_pass(library)
    config = load_config(library).config
    [tv] = config.libraries
    rewritten = [episode(show, 5) for show in (29, 1, 17, 3, 11, 23, 2)]  # in folders on many pages
    for rel_path in rewritten:
        with (tv.source / rel_path).open("r+b") as handle:
            handle.write(b"X")
    monkeypatch.setattr(incremental_scan, "MISSED_PAGE", 2)  # the memory is read 2 folders at a time
    store = open_store(config.paths.state_dir)
    try:
        _, missed = scan_in_full(tv, store, now_ns=clock())
    finally:
        store.close()

    assert missed == Missed(len(rewritten), tuple(sorted(rewritten)[:5]))
