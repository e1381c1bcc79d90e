"""`hb2r plan` as a real process, on real folders, real clips and a real state database."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from agent import plan_from_store
from agent.config import load_config
from agent.domain import LedgerEntry, SourceFile, UserChange, UserChangeKind
from agent.handbrake.probe import handbrake_version
from agent.identity import output_path, preset_identity
from agent.plan_command import NoState, PlanState, PlanWriter
from agent.scan import fingerprint
from agent.store import ledger, scans, users
from agent.store.choose import read_state
from agent.store.db import DATABASE_NAME, SCHEMA_VERSION, open_database
from tests.support.clips import make_clip
from tests.support.plan_cli import ADMIN_HASH, place, run_plan, snapshot, write_config

NOW = "2024-05-01T12:00:00+00:00"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-second video with sound, made once for the module and copied where needed."""
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (Debian package ffmpeg)")
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mkv", seconds=1)


def record_everything_done(config_path: Path) -> None:
    """Make the state db and archive say every source is encoded, as `hb2r run` would leave them."""
    config = load_config(config_path).config
    version = handbrake_version(config.handbrake.binary)
    connection = open_database(config.paths.state_dir)
    try:
        for library in config.libraries:
            preset = config.preset_for(library)
            preset_hash = preset_identity(preset, import_file_content=None, handbrake_version=version)
            for path in sorted(library.source.rglob("*")):
                if not path.is_file():
                    continue
                rel_path = path.relative_to(library.source).as_posix()
                info = path.stat()
                output = output_path(library, preset, rel_path)
                entry = LedgerEntry(
                    library.name,
                    rel_path,
                    fingerprint(path, size=info.st_size),
                    info.st_size,
                    info.st_mtime_ns,
                    preset_hash,
                    output,
                )
                ledger.record(connection, entry, encoded_at=NOW)
                target = config.paths.archive / output
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"encoded")
        for user in config.users:
            change = UserChange(UserChangeKind.ADD, user.name, user.role, user.password_hash)
            users.apply(connection, change, now=NOW)
    finally:
        connection.close()


def test_a_new_library_is_planned_for_transcoding(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "Show/Season 1/S01E01.mkv", "Show/Season 1/S01E02.mkv")
    place(clip, tmp_path / "movies", "Film (2020).mkv")
    config = write_config(tmp_path)

    finished = run_plan(config)

    assert finished.returncode == 2, finished.stderr
    lines = finished.stdout.splitlines()
    assert f"tv ({tmp_path / 'tv'} -> {tmp_path / 'archive'}/TV, 2 files)" in lines
    assert "  + transcode Show/Season 1/S01E01.mkv -> TV/Show/Season 1/S01E01.mkv (new)" in lines
    assert "  + transcode Show/Season 1/S01E02.mkv -> TV/Show/Season 1/S01E02.mkv (new)" in lines
    assert "  + transcode Film (2020).mkv -> Movies/Film (2020).mp4 (new)" in lines
    assert lines[-1] == "Plan: 3 to transcode."


def test_everything_recorded_and_present_is_in_sync(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "Show/S01E01.mkv", "Show/S01E02.mkv")
    place(clip, tmp_path / "movies", "Film.mkv", "Sequel.mkv")
    config = write_config(tmp_path, with_users=True)
    record_everything_done(config)

    finished = run_plan(config)

    assert finished.returncode == 0, finished.stdout + finished.stderr
    lines = finished.stdout.splitlines()
    assert lines == [
        f"tv ({tmp_path / 'tv'} -> {tmp_path / 'archive'}/TV, 2 files): in sync",
        "  watch: inotify events (new files are seen as they arrive)",
        f"movies ({tmp_path / 'movies'} -> {tmp_path / 'archive'}/Movies, 2 files): in sync",
        "  watch: inotify events (new files are seen as they arrive)",
        "Plan: in sync, nothing to do.",
    ]
    as_json = run_plan(config, "--json")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout)["pending"] is False
    assert json.loads(as_json.stdout)["actions"] == []


def test_a_lost_output_is_planned_again_after_being_in_sync(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "Show/S01E01.mkv", "Show/S01E02.mkv")
    config = write_config(tmp_path, libraries=["tv"])
    record_everything_done(config)
    (tmp_path / "archive" / "TV" / "Show" / "S01E02.mkv").unlink()

    finished = run_plan(config)

    assert finished.returncode == 2
    assert "  + transcode Show/S01E02.mkv -> TV/Show/S01E02.mkv (output missing)" in finished.stdout
    assert "S01E01" not in finished.stdout


def test_json_output_lists_the_pending_actions(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "Show/S01E01.mkv")
    place(clip, tmp_path / "movies", "Film.mkv")
    config = write_config(tmp_path, with_users=True)

    finished = run_plan(config, "--json")

    assert finished.returncode == 2
    result = json.loads(finished.stdout)
    assert result["pending"] is True
    assert result["summary"]["transcode"] == 2
    assert result["summary"]["user"] == 1
    transcodes = [action for action in result["actions"] if action["kind"] == "transcode"]
    assert sorted((action["library"], action["path"], action["output"]) for action in transcodes) == [
        ("movies", "Film.mkv", "Movies/Film.mp4"),
        ("tv", "Show/S01E01.mkv", "TV/Show/S01E01.mkv"),
    ]
    assert {action["reason"] for action in transcodes} == {"new"}
    assert {action["size"] for action in transcodes} == {clip.stat().st_size}
    assert {"kind": "user", "change": "add", "name": "admin", "role": "admin"} in result["actions"]
    assert ADMIN_HASH not in finished.stdout


def test_a_missing_source_pauses_its_library_only(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "movies", "Film.mkv")
    config = write_config(tmp_path)  # tmp_path/tv does not exist: a disk not mounted

    finished = run_plan(config)

    assert finished.returncode == 2
    lines = finished.stdout.splitlines()
    assert f"tv: PAUSED, source folder missing: {tmp_path / 'tv'} (not mounted?)" in lines
    assert "  + transcode Film.mkv -> Movies/Film.mp4 (new)" in lines
    assert lines[-1] == "Plan: 1 to transcode, 1 library paused."


def test_a_source_emptied_after_a_good_scan_is_paused_not_orphaned(tmp_path: Path, clip: Path) -> None:
    names = [f"Show/S01E{number:02d}.mkv" for number in range(1, 13)]
    place(clip, tmp_path / "tv", *names)
    config = write_config(tmp_path, libraries=["tv"])
    record_everything_done(config)
    connection = open_database(tmp_path / "state")
    try:
        scanned = [SourceFile(name, 1, 1, 1) for name in names]
        scans.record_scan(connection, library="tv", files=scanned, previous={}, now_ns=1, scanned_at=NOW)
    finally:
        connection.close()
    shutil.rmtree(tmp_path / "tv")
    (tmp_path / "tv").mkdir()  # the mount point is back, empty: the disk is not mounted

    finished = run_plan(config)

    lines = finished.stdout.splitlines()
    assert lines[0] == (
        "tv: PAUSED, 12 of 12 files vanished since the last good scan (more than 50%); is the disk mounted?"
    )
    assert "drift" not in finished.stdout  # the 12 outputs are not reported as orphans
    assert finished.returncode == 0  # a pause is a report, not work pending


@pytest.mark.parametrize("state", ["no-state-dir", "current-db", "old-schema-db"])
def test_plan_writes_nothing_anywhere(tmp_path: Path, clip: Path, state: str) -> None:
    place(clip, tmp_path / "tv", "Show/S01E01.mkv", "Show/S01E02.mkv")
    place(clip, tmp_path / "movies", "Film.mkv")
    config = write_config(tmp_path, with_users=True)
    if state != "no-state-dir":
        record_everything_done(config)
        place(clip, tmp_path / "tv", "Show/S01E03.mkv")  # one new file: something to plan
        os.utime(tmp_path / "movies" / "Film.mkv", ns=(1, 1))  # changed: fingerprint is read
    if state == "old-schema-db":
        connection = sqlite3.connect(tmp_path / "state" / DATABASE_NAME)
        connection.executescript(
            """
            DROP INDEX jobs_waiting_by_saving; DROP INDEX ledger_encodes; ALTER TABLE jobs DROP COLUMN saving;
            DROP TRIGGER job_tallies_on_insert; DROP TRIGGER job_tallies_on_update; DROP TRIGGER job_tallies_on_delete;
            DROP TRIGGER ledger_tallies_on_insert; DROP TRIGGER ledger_tallies_on_update;
            DROP TRIGGER ledger_tallies_on_delete; DROP TABLE job_tallies; DROP TABLE ledger_tallies;
            DROP INDEX jobs_by_state_id; DROP INDEX jobs_by_library_id; DROP INDEX jobs_by_library_state_id;
            DROP TABLE seen_files; DROP TABLE library_scans; DROP INDEX jobs_waiting; DROP TABLE agent_status;
            DROP TABLE revoked_tokens; DROP TABLE library_holds; DROP INDEX jobs_by_update;
            ALTER TABLE ledger DROP COLUMN output_size; ALTER TABLE users DROP COLUMN generated;
            ALTER TABLE ledger DROP COLUMN origin;
            DROP TRIGGER jobs_change_on_insert; DROP TRIGGER jobs_change_on_update; DROP INDEX jobs_by_change;
            ALTER TABLE jobs DROP COLUMN cancelled_by; ALTER TABLE jobs DROP COLUMN change_seq;
            DROP INDEX jobs_by_lease_token; ALTER TABLE jobs DROP COLUMN host; ALTER TABLE jobs DROP COLUMN lease_token;
            ALTER TABLE jobs DROP COLUMN lease_expires_at; ALTER TABLE jobs DROP COLUMN host_losses;
            ALTER TABLE jobs DROP COLUMN lost_hosts; ALTER TABLE jobs DROP COLUMN remaining_bytes;
            DROP TABLE leader; DROP TABLE hosts;
            DROP TABLE scanned_folders; DROP TABLE archive_folders; DROP TABLE archive_files;
            DROP INDEX ledger_by_folder; DROP INDEX ledger_by_fingerprint; DROP INDEX ledger_by_size;
            ALTER TABLE ledger DROP COLUMN folder;
            DROP INDEX jobs_waiting_by_size; DROP INDEX jobs_fronted; DROP TABLE media_facts;
            ALTER TABLE jobs DROP COLUMN source_size; ALTER TABLE jobs DROP COLUMN priority;
            DROP INDEX ledger_rule_copies; DROP INDEX ledger_larger_outputs;
            ALTER TABLE ledger DROP COLUMN larger_output;
            PRAGMA user_version = 1;
            """
        )
        connection.close()
    before = snapshot(tmp_path)

    finished = run_plan(config)

    assert finished.returncode == 2, finished.stderr
    assert snapshot(tmp_path) == before
    if state == "no-state-dir":
        assert not (tmp_path / "state").exists()
    else:
        assert "+ transcode Show/S01E03.mkv" in finished.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("version: 1\npaths: {archive: /a}\nlibrarys: []\n", ":3:", id="unknown-key"),
        pytest.param("version: 1\npaths: {archive: [/a\n", "not valid YAML", id="broken-yaml"),
        pytest.param(
            "version: 1\npaths: {archive: /a}\nlibraries:\n"
            "  - {name: tv, source: /tv, output: TV, preset: tvv}\npresets: {tv: {handbrake: x}}\n",
            "preset 'tvv' is not defined",
            id="undefined-preset",
        ),
        pytest.param(None, "no such file", id="no-config-file"),
    ],
)
def test_a_bad_config_is_explained_and_nothing_is_done(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    config = tmp_path / "config.yaml"
    if content is not None:
        config.write_text(content)
    (tmp_path / "home").mkdir()

    finished = run_plan(config)

    assert finished.returncode == 1
    assert expected in finished.stderr
    assert "nothing was done" in finished.stderr
    assert finished.stdout == ""


def test_a_state_database_from_a_newer_hb2r_is_an_error(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "a.mkv")
    config = write_config(tmp_path, libraries=["tv"])
    open_database(tmp_path / "state").close()
    connection = sqlite3.connect(tmp_path / "state" / DATABASE_NAME)
    connection.execute("PRAGMA user_version = 99")
    connection.close()

    finished = run_plan(config)

    assert finished.returncode == 1
    assert f"schema version 99, newer than this hb2r knows ({SCHEMA_VERSION})" in finished.stderr
    assert "upgrade hb2r or restore a backup" in finished.stderr
    assert finished.stdout == ""


def test_a_damaged_state_database_is_an_error(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "a.mkv")
    config = write_config(tmp_path, libraries=["tv"])
    open_database(tmp_path / "state").close()
    connection = sqlite3.connect(tmp_path / "state" / DATABASE_NAME)
    connection.execute("DROP TABLE ledger")  # current version number, a table lost
    connection.close()

    finished = run_plan(config)

    assert finished.returncode == 1
    assert str(tmp_path / "state" / DATABASE_NAME) in finished.stderr
    assert finished.stdout == ""


@pytest.mark.skipif(
    os.geteuid() == 0 and shutil.which("setpriv") is None,
    reason="as root, permission checks need setpriv (util-linux) to drop CAP_DAC_OVERRIDE",
)
def test_a_state_dir_the_operator_cannot_read_is_an_error(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "a.mkv")
    config = write_config(tmp_path, libraries=["tv"])
    open_database(tmp_path / "state").close()
    (tmp_path / "state").chmod(0)  # the agent's private folder, seen by another user
    try:
        finished = run_plan(config, unprivileged=True)
    finally:
        (tmp_path / "state").chmod(0o700)

    if "setpriv" in finished.stderr:
        pytest.skip(f"cannot drop root's file-permission bypass here: {finished.stderr.strip()}")
    assert finished.returncode == 1
    assert "Permission denied" in finished.stderr
    assert str(tmp_path / "state" / DATABASE_NAME) in finished.stderr
    assert finished.stdout == ""


def test_empty_files_and_bad_names_are_reported_as_skipped(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "good.mkv")
    (tmp_path / "tv" / "empty.mkv").write_bytes(b"")
    with open(os.fsencode(tmp_path / "tv") + b"/bad\xff.mkv", "wb") as handle:
        handle.write(clip.read_bytes())
    config = write_config(tmp_path, libraries=["tv"])

    finished = run_plan(config)

    assert finished.returncode == 2
    lines = finished.stdout.splitlines()
    assert "  ! skip      empty.mkv (empty file (0 bytes))" in lines
    assert (
        "  ! skip      bad\\xff.mkv (file name is not valid UTF-8; rename it to have it encoded)" in lines
    )
    assert "  + transcode good.mkv -> TV/good.mkv (new)" in lines
    assert lines[-1] == "Plan: 1 to transcode, 2 skipped."


def test_files_that_changed_recently_wait(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "Show/S01E01.mkv")
    config = write_config(tmp_path, libraries=["tv"], stable_after="1h")

    finished = run_plan(config)

    assert finished.returncode == 2  # waiting files are work to come
    lines = finished.stdout.splitlines()
    assert any(
        re.fullmatch(r"  \. wait      Show/S01E01\.mkv \(changed recently; stable in (59m\d\ds|60m00s)\)", line)
        for line in lines
    ), lines
    assert "transcode" not in finished.stdout
    assert lines[-1] == "Plan: 1 waiting."


# Names a file may really have on Linux: everything but "/" and NUL.
HOSTILE_NAMES = {
    "line\nbreak.mkv": '"line\\nbreak.mkv"',
    "\x1b[31mred\x1b[0m.mkv": '"\\x1b[31mred\\x1b[0m.mkv"',
    "\x1b]0;owned\x07title.mkv": '"\\x1b]0;owned\\x07title.mkv"',
    "cr\rover.mkv": '"cr\\rover.mkv"',
    "tab\there.mkv": '"tab\\there.mkv"',
    "evil\u202egnp.mkv": '"evil\\u202egnp.mkv"',
    "isolate\u2067x\u2069.mkv": '"isolate\\u2067x\\u2069.mkv"',
}
ORDINARY_NAMES = ("Amélie – 東京 (2001).mkv", "two  spaces.mkv", "back\\slash.mkv")


def _on_a_terminal(text: str) -> set[str]:
    """Return the characters in text that a terminal would act on or hide (all but newline)."""
    import unicodedata

    return {char for char in text if char != "\n" and unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp"}}


def test_hostile_file_names_are_quoted_on_one_line_and_ordinary_ones_shown_as_they_are(
    tmp_path: Path, clip: Path
) -> None:
    place(clip, tmp_path / "tv", *HOSTILE_NAMES, *ORDINARY_NAMES)
    config = write_config(tmp_path, libraries=["tv"])

    finished = run_plan(config)

    assert finished.returncode == 2, finished.stderr
    assert _on_a_terminal(finished.stdout) == set()
    lines = finished.stdout.splitlines()
    # heading, how it notices new files, one per file, summary
    assert len(lines) == 2 + len(HOSTILE_NAMES) + len(ORDINARY_NAMES) + 1
    for quoted in HOSTILE_NAMES.values():
        assert f"  + transcode {quoted} -> \"TV/{quoted[1:]} (new)" in lines, lines
    for name in ORDINARY_NAMES:
        assert f"  + transcode {name} -> TV/{name} (new)" in lines, lines

    as_json = run_plan(config, "--json")
    paths = {action["path"] for action in json.loads(as_json.stdout)["actions"]}
    assert paths == {*HOSTILE_NAMES, *ORDINARY_NAMES}  # JSON keeps the names exact


@pytest.fixture
def fuse_movies(tmp_path: Path) -> Iterable[Path]:
    """tmp_path/movies as a bindfs (FUSE) view of tmp_path/disk, as an sshfs or rclone mount would
    be: a filesystem where other machines' changes send no inotify event. Unmounted at the end."""
    if shutil.which("bindfs") is None:
        pytest.skip("bindfs is missing (Debian package bindfs; make system-packages)")
    (tmp_path / "disk").mkdir()
    (tmp_path / "movies").mkdir()
    subprocess.run(["bindfs", str(tmp_path / "disk"), str(tmp_path / "movies")], check=True)
    try:
        yield tmp_path / "movies"
    finally:
        subprocess.run(["umount", "-l", str(tmp_path / "movies")], check=False)


def test_plan_says_how_each_library_notices_new_files(tmp_path: Path, clip: Path, fuse_movies: Path) -> None:
    place(clip, tmp_path / "tv", "Show/S01E01.mkv")
    place(clip, fuse_movies, "Film.mkv")
    config = write_config(tmp_path)

    lines = run_plan(config).stdout.splitlines()

    assert lines[1] == "  watch: inotify events (new files are seen as they arrive)"
    movies = lines.index(f"movies ({fuse_movies} -> {tmp_path / 'archive'}/Movies, 1 file)")
    assert lines[movies + 1] == (
        f"  watch: polling every 1m ({fuse_movies} is on fuse ({tmp_path / 'disk'} at {fuse_movies}), "
        "where changes made by other machines send no inotify events)"
    )
    watch = json.loads(run_plan(config, "--json").stdout)["watch"]
    assert watch["tv"] == {"mode": "events", "reason": None}
    assert watch["movies"]["mode"] == "polling" and "fuse" in watch["movies"]["reason"]


# --- planned a batch of folders at a time (agent.plan_stream): the plan must not depend on where
# the batches fall, and a rename must be seen whichever folder the walk reaches first.


def plan_text(config_path: Path, *, as_json: bool = False) -> tuple[str, bool]:
    """Return the plan as `hb2r plan` writes it (in this process, so that the batch size can be set)."""
    config = load_config(config_path).config
    out = io.StringIO()

    def write(state: PlanState) -> bool:
        writer = PlanWriter(
            config, state, as_json=as_json, watch={}, out=out, now_ns=time.time_ns(), warn=lambda message: None
        )
        return writer.write()

    pending = read_state(config, write)
    if pending is None:
        pending = write(NoState())
    return out.getvalue(), pending


def small_files(folder: Path, rel_paths: list[str]) -> None:
    """Files of a few bytes, each its own content (a rename is found by content)."""
    for rel_path in rel_paths:
        path = folder / rel_path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"video {rel_path}\n".encode())


def library_of_changes(tmp_path: Path) -> Path:
    """A library of 40 recorded files in 8 folders, then: new files, one changed, one deleted,
    one renamed into an earlier folder and one into a later folder, one lost output."""
    names = [f"Show {show}/Season 1/E{episode:02d}.mkv" for show in range(1, 9) for episode in range(1, 6)]
    small_files(tmp_path / "tv", names)
    config = write_config(tmp_path, libraries=["tv"])
    record_everything_done(config)
    tv = tmp_path / "tv"
    small_files(tv, ["Show 2/Season 2/E01.mkv", "Show 9/Season 1/E01.mkv"])
    (tv / "Show 3/Season 1/E01.mkv").write_bytes(b"a new cut\n")
    (tv / "Show 4/Season 1/E02.mkv").unlink()
    (tv / "Show 1/Extras").mkdir()
    shutil.move(tv / "Show 7/Season 1/E03.mkv", tv / "Show 1/Extras/E03.mkv")  # to a folder walked earlier
    (tv / "Show 8/Extras").mkdir()
    shutil.move(tv / "Show 2/Season 1/E04.mkv", tv / "Show 8/Extras/E04.mkv")  # to a folder walked later
    (tmp_path / "archive/TV/Show 5/Season 1/E05.mkv").unlink()
    return config


def test_the_plan_is_the_same_however_small_the_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = library_of_changes(tmp_path)
    whole, whole_pending = plan_text(config)
    whole_json, _ = plan_text(config, as_json=True)

    monkeypatch.setattr(plan_from_store, "BATCH_FILES", 3)  # the agent's batching and hb2r plan's
    batched, batched_pending = plan_text(config)
    batched_json, _ = plan_text(config, as_json=True)

    assert batched == whole
    assert json.loads(batched_json) == json.loads(whole_json)
    assert batched_pending and whole_pending
    lines = whole.splitlines()
    moved_earlier = "TV/Show 7/Season 1/E03.mkv -> TV/Show 1/Extras/E03.mkv (source now Show 1/Extras/E03.mkv)"
    moved_later = "TV/Show 2/Season 1/E04.mkv -> TV/Show 8/Extras/E04.mkv (source now Show 8/Extras/E04.mkv)"
    assert f"  > rename    {moved_earlier}" in lines
    assert f"  > rename    {moved_later}" in lines
    assert "  + transcode Show 2/Season 2/E01.mkv -> TV/Show 2/Season 2/E01.mkv (new)" in lines
    assert "  + transcode Show 9/Season 1/E01.mkv -> TV/Show 9/Season 1/E01.mkv (new)" in lines
    assert "  + transcode Show 3/Season 1/E01.mkv -> TV/Show 3/Season 1/E01.mkv (changed)" in lines
    assert "  + transcode Show 5/Season 1/E05.mkv -> TV/Show 5/Season 1/E05.mkv (output missing)" in lines
    assert any(line.startswith("  ~ drift     Show 4/Season 1/E02.mkv (source vanished") for line in lines)
    assert lines[-1] == "Plan: 4 to transcode, 2 to rename, 1 drifted."
    assert len(lines) == 1 + 7 + 1  # heading, the actions, the summary


def test_a_file_moved_before_or_after_its_old_folder_is_a_rename_in_the_plan(tmp_path: Path) -> None:
    config = library_of_changes(tmp_path)

    finished = run_plan(config)

    assert finished.returncode == 2, finished.stderr
    assert "Show 1/Extras/E03.mkv (new)" not in finished.stdout
    assert "(source now Show 1/Extras/E03.mkv)" in finished.stdout
    assert "(source now Show 8/Extras/E04.mkv)" in finished.stdout
    assert "Show 7/Season 1/E03.mkv (source vanished" not in finished.stdout
