"""The SQLite state database, for real: creation, migrations, constraints, read-only opening."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.domain import LedgerEntry, SeenFile, SourceFile, UserChange, UserChangeKind, UserRecord
from agent.store import StoreError, ledger, scans, users
from agent.store.db import (
    DATABASE_NAME,
    MIGRATIONS,
    SCHEMA_VERSION,
    StateError,
    open_database,
    open_readonly,
)
from agent.store.planner_ledger import load_ledger

NOW = "2024-05-01T12:00:00+00:00"
HASH_A = "$2b$12$" + "a" * 53
HASH_B = "$2b$12$" + "b" * 53


def entry(rel_path: str = "Show/E01.mkv", **changes: object) -> LedgerEntry:
    values: dict[str, object] = {
        "library": "tv",
        "rel_path": rel_path,
        "fingerprint": f"100:{rel_path}",
        "size": 100,
        "mtime_ns": 1_000,
        "preset_hash": "p1",
        "output_path": f"TV/{rel_path}",
    }
    values.update(changes)
    return LedgerEntry(**values)  # type: ignore[arg-type]


@pytest.fixture
def database(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(tmp_path / "state")
    yield connection
    connection.close()


def user_version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("PRAGMA user_version").fetchone()[0])
    finally:
        connection.close()


def files_in(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Return name -> (size, mtime_ns, sha256) of every file in folder."""
    return {
        path.name: (
            path.stat().st_size,
            path.stat().st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest(),
        )
        for path in sorted(folder.iterdir())
    }


def build_old_database(state_dir: Path, version: int) -> None:
    """Write hb2r.db as hb2r at schema `version` left it, with a row in each of its tables."""
    state_dir.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(state_dir / DATABASE_NAME, isolation_level=None)
    for script in MIGRATIONS[:version]:
        connection.executescript(script)
    connection.execute(f"PRAGMA user_version = {version}")
    if version >= 1:
        connection.execute(
            "INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, "
            "output_path, encoded_at) VALUES ('tv', 'Show/E01.mkv', '100:x', 100, 1000, 'p1', "
            "'TV/Show/E01.mkv', ?)",
            (NOW,),
        )
        connection.execute(
            "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, "
            "created_at, updated_at) VALUES ('tv', 'Show/E02.mkv', '7:y', 'p1', 'TV/Show/E02.mkv', "
            "'new', ?, ?)",
            (NOW, NOW),
        )
        connection.execute(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at) "
            "VALUES ('admin', 'admin', ?, ?, ?)",
            (HASH_A, NOW, NOW),
        )
    if version >= 2:
        connection.execute(
            "INSERT INTO seen_files (library, rel_path, size, mtime_ns, fingerprint, changed_at_ns)"
            " VALUES ('tv', 'Show/E01.mkv', 100, 1000, '100:x', NULL)"
        )
        connection.execute("INSERT INTO library_scans (library, file_count, scanned_at) VALUES ('tv', 1, ?)", (NOW,))
    connection.close()


def test_a_new_database_is_made_in_a_private_folder_in_wal_mode(tmp_path: Path) -> None:
    state_dir = tmp_path / "var" / "lib" / "hb2r"

    connection = open_database(state_dir)
    try:
        journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        assert load_ledger(connection).entries == ()
    finally:
        connection.close()

    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700  # secrets live here too
    assert (state_dir / DATABASE_NAME).is_file()
    assert journal_mode == "wal"  # the HTTP service reads while the engine writes
    assert version == SCHEMA_VERSION


def test_reopening_a_current_database_keeps_its_rows(tmp_path: Path) -> None:
    connection = open_database(tmp_path)
    ledger.record(connection, entry(), encoded_at=NOW)
    connection.close()

    connection = open_database(tmp_path)
    try:
        assert ledger.load_entries(connection) == (entry(),)
    finally:
        connection.close()
    assert user_version(tmp_path / DATABASE_NAME) == SCHEMA_VERSION


@pytest.mark.parametrize("version", range(SCHEMA_VERSION), ids=lambda version: f"from-v{version}")
def test_an_older_database_is_migrated_and_keeps_its_rows(tmp_path: Path, version: int) -> None:
    build_old_database(tmp_path, version)

    connection = open_database(tmp_path)
    try:
        state = load_ledger(connection)
        jobs = connection.execute("SELECT rel_path, state FROM jobs").fetchall()
        # The tables the migrations added work.
        scans.record_scan(
            connection,
            library="movies",
            files=[SourceFile("Film.mkv", 5, 50, 50)],
            previous={},
            now_ns=1,
            scanned_at=NOW,
        )
        assert scans.load_file_counts(connection)["movies"] == 1
    finally:
        connection.close()

    assert user_version(tmp_path / DATABASE_NAME) == SCHEMA_VERSION
    if version >= 1:
        assert [item.rel_path for item in state.entries] == ["Show/E01.mkv"]
        assert jobs == [("Show/E02.mkv", "queued")]
        assert state.users == (UserRecord("admin", "admin", HASH_A),)
    else:
        assert state.entries == () and jobs == [] and state.users == ()
    if version >= 2:
        assert state.seen[("tv", "Show/E01.mkv")] == SeenFile(100, 1000, "100:x", None)
        assert state.file_counts == {"tv": 1}


def test_files_remembered_before_folders_were_are_filed_under_their_folder(tmp_path: Path) -> None:
    build_old_database(tmp_path, 11)
    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    connection.executemany(
        "INSERT INTO seen_files (library, rel_path, size, mtime_ns) VALUES ('tv', ?, 1, 1)",
        [("Top.mkv",), ("Show/Season 1.5/S01E01 v2.mkv",), ("a.b/c/d.e.mkv",)],
    )
    connection.commit()
    connection.close()

    database = open_database(tmp_path)
    try:
        rows = dict(database.execute("SELECT rel_path, folder FROM seen_files").fetchall())
    finally:
        database.close()

    assert rows == {
        "Show/E01.mkv": "Show",
        "Top.mkv": "",
        "Show/Season 1.5/S01E01 v2.mkv": "Show/Season 1.5",
        "a.b/c/d.e.mkv": "a.b/c",
    }


def test_a_database_from_a_newer_hb2r_is_refused_and_left_alone(tmp_path: Path) -> None:
    build_old_database(tmp_path, SCHEMA_VERSION)
    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.commit()
    connection.close()

    with pytest.raises(StateError) as raised:
        open_database(tmp_path)

    message = str(raised.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"({SCHEMA_VERSION})" in message
    assert "upgrade hb2r" in message
    assert user_version(tmp_path / DATABASE_NAME) == SCHEMA_VERSION + 1


def test_a_state_dir_that_cannot_be_made_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")

    with pytest.raises(StateError, match="cannot create state_dir"):
        open_database(tmp_path / "file" / "state")


def test_a_database_file_that_cannot_be_opened_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / DATABASE_NAME).mkdir()  # e.g. a botched restore

    with pytest.raises(StateError, match=DATABASE_NAME):
        open_database(tmp_path)


def test_a_file_that_is_not_a_database_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / DATABASE_NAME).write_text("this is not SQLite\n" * 100)

    with pytest.raises(StateError, match=DATABASE_NAME):
        open_database(tmp_path)
    with pytest.raises(StateError, match=DATABASE_NAME):
        open_readonly(tmp_path)


def test_a_job_in_an_unknown_state_is_refused(database: sqlite3.Connection) -> None:
    with pytest.raises(StoreError, match="CHECK"):
        database.execute(
            "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, "
            "state, created_at, updated_at) VALUES ('tv', 'a.mkv', 'f', 'p', 'TV/a.mkv', 'new', "
            "'paused', ?, ?)",
            (NOW, NOW),
        )
    assert database.execute("SELECT count(*) FROM jobs").fetchone()[0] == 0


def test_a_user_with_an_unknown_role_is_refused(database: sqlite3.Connection) -> None:
    with pytest.raises(StoreError, match="CHECK"):
        users.apply(database, UserChange(UserChangeKind.ADD, "eve", "root", HASH_A), now=NOW)
    assert users.load_users(database) == ()


def test_a_second_ledger_row_for_one_source_is_refused(database: sqlite3.Connection) -> None:
    ledger.record(database, entry(), encoded_at=NOW)

    with pytest.raises(StoreError, match="UNIQUE"):
        database.execute(
            "INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, "
            "output_path, encoded_at) VALUES ('tv', 'Show/E01.mkv', 'other', 1, 1, 'p2', "
            "'TV/elsewhere.mkv', ?)",
            (NOW,),
        )
    assert ledger.load_entries(database) == (entry(),)


def test_two_sources_cannot_record_the_same_output(database: sqlite3.Connection) -> None:
    ledger.record(database, entry("a.mkv", output_path="TV/a.mkv"), encoded_at=NOW)

    with pytest.raises(StoreError, match="UNIQUE"):
        ledger.record(database, entry("a.mp4", output_path="TV/a.mkv"), encoded_at=NOW)


def test_the_same_job_cannot_be_queued_twice(database: sqlite3.Connection) -> None:
    insert = (
        "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, "
        "created_at, updated_at) VALUES ('tv', 'a.mkv', '9:f', 'p1', 'TV/a.mkv', ?, ?, ?)"
    )
    database.execute(insert, ("new", NOW, NOW))

    with pytest.raises(StoreError, match="UNIQUE"):
        database.execute(insert, ("changed", NOW, NOW))
    assert database.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1


def test_recording_a_path_again_replaces_its_ledger_entry(database: sqlite3.Connection) -> None:
    ledger.record(database, entry(), encoded_at=NOW)
    newer = entry(fingerprint="200:new", size=200, mtime_ns=2_000, preset_hash="p2")

    ledger.record(database, newer, encoded_at="2024-06-01T00:00:00+00:00")

    assert ledger.load_entries(database) == (newer,)
    encoded_at = database.execute("SELECT encoded_at FROM ledger").fetchone()[0]
    assert encoded_at == "2024-06-01T00:00:00+00:00"


def test_a_forgotten_entry_is_gone(database: sqlite3.Connection) -> None:
    ledger.record(database, entry("a.mkv"), encoded_at=NOW)
    ledger.record(database, entry("b.mkv"), encoded_at=NOW)

    ledger.forget(database, library="tv", rel_path="a.mkv")

    assert [item.rel_path for item in ledger.load_entries(database)] == ["b.mkv"]


def test_users_are_added_updated_and_removed(database: sqlite3.Connection) -> None:
    users.apply(database, UserChange(UserChangeKind.ADD, "admin", "admin", HASH_A), now=NOW)
    users.apply(database, UserChange(UserChangeKind.ADD, "viewer", "user", HASH_A), now=NOW)
    assert users.load_users(database) == (
        UserRecord("admin", "admin", HASH_A),
        UserRecord("viewer", "user", HASH_A),
    )

    users.apply(database, UserChange(UserChangeKind.UPDATE, "viewer", "admin", HASH_B), now=NOW)
    users.apply(database, UserChange(UserChangeKind.REMOVE, "admin", "admin"), now=NOW)

    assert users.load_users(database) == (UserRecord("viewer", "admin", HASH_B),)


def source(rel_path: str, size: int, mtime_ns: int, fingerprint: str | None = None) -> SourceFile:
    return SourceFile(rel_path, size, mtime_ns, mtime_ns, fingerprint)


def test_the_scan_memory_tracks_changes_and_forgets_vanished_files(
    database: sqlite3.Connection,
) -> None:
    scans.record_scan(
        database,
        library="tv",
        files=[source("grows.mkv", 10, 1), source("still.mkv", 20, 1, "20:aa"), source("gone.mkv", 5, 1)],
        previous={},
        now_ns=1_000,
        scanned_at=NOW,
    )
    first = scans.load_seen(database)
    assert first[("tv", "grows.mkv")] == SeenFile(10, 1, None, None)  # new, not a change
    assert first[("tv", "still.mkv")] == SeenFile(20, 1, "20:aa", None)
    assert scans.load_file_counts(database) == {"tv": 3}

    scans.record_scan(
        database,
        library="tv",
        files=[source("grows.mkv", 15, 2), source("still.mkv", 20, 1)],
        previous=first,
        now_ns=2_000,
        scanned_at=NOW,
    )
    second = scans.load_seen(database)
    assert set(second) == {("tv", "grows.mkv"), ("tv", "still.mkv")}
    assert second[("tv", "grows.mkv")] == SeenFile(15, 2, None, 2_000)
    assert second[("tv", "still.mkv")] == SeenFile(20, 1, "20:aa", None)  # fingerprint kept
    assert scans.load_file_counts(database) == {"tv": 2}

    scans.record_scan(
        database,
        library="tv",
        files=[source("grows.mkv", 15, 2), source("still.mkv", 20, 3)],
        previous=second,
        now_ns=3_000,
        scanned_at=NOW,
    )
    third = scans.load_seen(database)
    assert third[("tv", "grows.mkv")].changed_at_ns == 2_000  # unchanged since: stability clock runs
    assert third[("tv", "still.mkv")] == SeenFile(20, 3, None, 3_000)  # touched: old fingerprint dropped


def test_a_scan_of_one_library_leaves_the_others_memory_alone(database: sqlite3.Connection) -> None:
    for library, name in (("tv", "E01.mkv"), ("movies", "Film.mkv")):
        scans.record_scan(
            database, library=library, files=[source(name, 1, 1)], previous={}, now_ns=1, scanned_at=NOW
        )

    previous = scans.load_seen(database)
    scans.record_scan(database, library="tv", files=[], previous=previous, now_ns=2, scanned_at=NOW)

    assert set(scans.load_seen(database)) == {("movies", "Film.mkv")}
    assert scans.load_file_counts(database) == {"tv": 0, "movies": 1}


def test_the_scan_memory_survives_a_restart(tmp_path: Path) -> None:
    connection = open_database(tmp_path)
    scans.record_scan(
        connection, library="tv", files=[source("a.mkv", 1, 1)], previous={}, now_ns=1, scanned_at=NOW
    )
    connection.close()

    reader = open_readonly(tmp_path)
    assert reader is not None
    try:
        state = load_ledger(reader)
    finally:
        reader.close()
    assert state.seen == {("tv", "a.mkv"): SeenFile(1, 1, None, None)}
    assert state.file_counts == {"tv": 1}


def test_readonly_without_a_database_returns_none_and_creates_nothing(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"

    assert open_readonly(state_dir) is None

    assert not state_dir.exists()
    state_dir.mkdir()
    assert open_readonly(state_dir) is None
    assert list(state_dir.iterdir()) == []


def test_readonly_on_a_current_database_writes_nothing_beside_it(tmp_path: Path) -> None:
    connection = open_database(tmp_path)
    ledger.record(connection, entry(), encoded_at=NOW)
    connection.close()
    before = files_in(tmp_path)
    assert list(before) == [DATABASE_NAME]

    reader = open_readonly(tmp_path)
    assert reader is not None
    try:
        assert load_ledger(reader).entries == (entry(),)
        with pytest.raises(StoreError, match="readonly"):
            reader.execute("DELETE FROM ledger")
    finally:
        reader.close()

    assert files_in(tmp_path) == before  # no -wal, no -shm, same bytes


def test_readonly_sees_what_a_running_agent_just_wrote(tmp_path: Path) -> None:
    agent = open_database(tmp_path)
    try:
        ledger.record(agent, entry(), encoded_at=NOW)  # committed, still only in the WAL

        reader = open_readonly(tmp_path)
        assert reader is not None
        try:
            assert load_ledger(reader).entries == (entry(),)
        finally:
            reader.close()

        ledger.record(agent, entry("b.mkv"), encoded_at=NOW)  # the agent still writes
        assert len(ledger.load_entries(agent)) == 2
    finally:
        agent.close()


def test_readonly_after_a_crash_without_its_shm_file_creates_none_and_says_so(tmp_path: Path) -> None:
    agent = open_database(tmp_path)
    ledger.record(agent, entry(), encoded_at=NOW)
    # A copy taken while the agent ran: the database and its -wal, no -shm.
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in (DATABASE_NAME, f"{DATABASE_NAME}-wal"):
        (copy / name).write_bytes((tmp_path / name).read_bytes())
    agent.close()
    before = files_in(copy)
    warnings: list[str] = []

    reader = open_readonly(copy, warn=warnings.append)
    assert reader is not None
    reader.close()

    assert files_in(copy) == before
    assert len(warnings) == 1
    assert "-wal has changes not yet merged" in warnings[0]


@pytest.mark.parametrize("version", range(SCHEMA_VERSION), ids=lambda version: f"from-v{version}")
def test_readonly_on_an_older_database_migrates_a_copy_in_memory(tmp_path: Path, version: int) -> None:
    build_old_database(tmp_path, version)
    before = files_in(tmp_path)

    reader = open_readonly(tmp_path)
    assert reader is not None
    try:
        state = load_ledger(reader)  # reads the tables the file does not have yet
        assert reader.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        reader.close()

    assert files_in(tmp_path) == before
    assert user_version(tmp_path / DATABASE_NAME) == version
    assert [item.rel_path for item in state.entries] == (["Show/E01.mkv"] if version >= 1 else [])


def test_readonly_refuses_a_newer_database(tmp_path: Path) -> None:
    build_old_database(tmp_path, SCHEMA_VERSION)
    connection = sqlite3.connect(tmp_path / DATABASE_NAME)
    connection.execute("PRAGMA user_version = 99")
    connection.commit()
    connection.close()

    with pytest.raises(StateError, match=f"schema version 99, newer than this hb2r knows \\({SCHEMA_VERSION}\\)"):
        open_readonly(tmp_path)


# --- links and other users' folders ------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [DATABASE_NAME, f"{DATABASE_NAME}-wal", f"{DATABASE_NAME}-shm", f"{DATABASE_NAME}-journal"]
)
def test_a_link_at_the_database_or_a_side_file_is_refused_not_followed(tmp_path: Path, name: str) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not hb2r's")
    (state / name).symlink_to(elsewhere)

    with pytest.raises(StateError) as raised:
        open_database(state).close()

    assert str(raised.value) == (
        f"{state / name} is a symbolic link; hb2r does not follow links in its state folder: remove it"
    )
    assert elsewhere.read_bytes() == b"not hb2r's"


def test_a_new_database_is_private_to_its_user(tmp_path: Path) -> None:
    open_database(tmp_path / "state").close()

    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state" / DATABASE_NAME).stat().st_mode) == 0o600


def test_a_group_writable_state_folder_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o770)

    with pytest.raises(StateError, match=r"is writable by its group \(mode 0770\); make it private: chmod 700"):
        open_database(state).close()

    assert list(state.iterdir()) == []
