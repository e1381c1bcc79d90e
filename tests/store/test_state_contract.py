"""Everything else a store keeps, as every store must keep it: the ledger of what was encoded,
the scan memory, users, paused libraries, why jobs are held back, ended tokens; and a
transaction that keeps a finished job and its ledger row together."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.domain import (
    FolderVisit,
    LedgerEntry,
    RememberedFolder,
    SeenFile,
    SourceFile,
    UserChange,
    UserChangeKind,
    UserRecord,
)
from agent.store.holds import Hold
from agent.store.jobs import JobState
from agent.store.ledger import LibraryBytes
from agent.store.protocol import Store
from agent.store.sqlite import SqliteStore, open_store
from agent.timestamps import stamp
from tests.support.jobs import new_job

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STAMP = T0.isoformat()


def entry(rel_path: str = "Show/E01.mkv", *, library: str = "tv", fingerprint: str = "100:a") -> LedgerEntry:
    return LedgerEntry(library, rel_path, fingerprint, 100, 7, "p1", f"{library.upper()}/{rel_path}")


# --- the ledger


def test_what_was_recorded_is_what_the_planner_reads(store: Store) -> None:
    store.record_output(entry("a.mkv"), encoded_at=STAMP, output_size=40)
    store.record_output(entry("b.mkv", library="movies"), encoded_at=STAMP)

    assert sorted(store.load_ledger().entries, key=lambda e: e.rel_path) == [
        entry("a.mkv"),
        entry("b.mkv", library="movies"),
    ]
    assert store.records(library="tv", rel_path="a.mkv", fingerprint="100:a", preset_hash="p1")
    assert not store.records(library="tv", rel_path="a.mkv", fingerprint="999:z", preset_hash="p1")
    assert store.output_size(library="tv", rel_path="a.mkv") == 40
    assert store.output_holder("MOVIES/b.mkv") == "movies"
    assert store.output_holder("TV/nothing.mkv") is None


def test_recording_a_source_again_replaces_its_row(store: Store) -> None:
    store.record_output(entry("a.mkv"), encoded_at=STAMP, output_size=40)
    store.record_output(entry("a.mkv", fingerprint="200:b"), encoded_at=STAMP, output_size=50)

    assert store.load_ledger().entries == (entry("a.mkv", fingerprint="200:b"),)
    assert store.output_size(library="tv", rel_path="a.mkv") == 50


def test_only_an_output_hb2r_made_may_be_replaced_not_one_it_adopted(store: Store) -> None:
    store.record_output(entry("made.mkv"), encoded_at=STAMP)
    store.record_output(entry("found.mkv"), encoded_at=STAMP, adopted=True)

    assert store.made_output("TV/made.mkv") and not store.made_output("TV/found.mkv")
    assert store.holds_output("TV/found.mkv") and not store.holds_output("TV/other.mkv")
    assert store.adopted(library="tv", rel_path="found.mkv") and not store.adopted(library="tv", rel_path="made.mkv")


def test_forgetting_by_source_or_by_output(store: Store) -> None:
    store.record_output(entry("a.mkv"), encoded_at=STAMP)
    store.record_output(entry("b.mkv"), encoded_at=STAMP)

    store.forget(library="tv", rel_path="a.mkv")
    store.forget_output("TV/b.mkv")

    assert store.load_ledger().entries == ()


def test_a_renamed_library_carries_its_entry_over_with_the_source_as_it_is_now(store: Store) -> None:
    store.record_output(entry("a.mkv", library="series"), encoded_at=STAMP, output_size=40)

    store.carry_over(output_path="SERIES/a.mkv", library="tv", rel_path="S1/a.mkv", size=123, mtime_ns=9)

    assert store.load_ledger().entries == (LedgerEntry("tv", "S1/a.mkv", "100:a", 123, 9, "p1", "SERIES/a.mkv"),)
    assert store.output_size(library="tv", rel_path="S1/a.mkv") == 40


def test_space_saved_counts_only_the_outputs_whose_size_is_known(store: Store) -> None:
    store.record_output(entry("a.mkv"), encoded_at=STAMP, output_size=40)
    store.record_output(entry("b.mkv"), encoded_at=STAMP)

    assert store.bytes_by_library() == {"tv": LibraryBytes(files=2, input_bytes=100, output_bytes=40)}
    assert store.unsized_outputs() == ["TV/b.mkv"]
    store.set_output_size("TV/b.mkv", 30)
    assert store.bytes_by_library() == {"tv": LibraryBytes(files=2, input_bytes=200, output_bytes=70)}
    assert store.unsized_outputs() == []


def test_an_output_a_queued_job_will_write_is_known_as_hb2rs_own(store: Store) -> None:
    store.enqueue(**new_job("a.mkv", fingerprint="100:a"))

    assert store.awaited_by_a_job(library="tv", rel_path="a.mkv", fingerprint="100:a", output_path="TV/a.mkv")
    assert not store.awaited_by_a_job(library="tv", rel_path="a.mkv", fingerprint="200:b", output_path="TV/a.mkv")


# --- a transaction


def test_a_job_and_its_ledger_row_are_finished_together_or_not_at_all(store: Store) -> None:
    job = store.enqueue(**new_job("a.mkv", fingerprint="100:a"))
    assert job is not None
    store.mark_running(job.id, now=T0)

    with pytest.raises(OSError, match="publish failed"), store.transaction():
        store.record_output(entry("a.mkv"), encoded_at=STAMP)
        store.mark_done(job.id, now=T0)
        raise OSError("publish failed")

    after = store.get_job(job.id)
    assert after is not None and after.state is JobState.RUNNING
    assert store.load_ledger().entries == ()
    with store.transaction():
        store.record_output(entry("a.mkv"), encoded_at=STAMP)
        with store.transaction():  # a nested block joins the outer one
            store.mark_done(job.id, now=T0)
    done = store.get_job(job.id)
    assert done is not None and done.state is JobState.DONE and store.load_ledger().entries == (entry("a.mkv"),)


# --- the scan memory


def source(rel_path: str, size: int, mtime_ns: int, fingerprint: str | None = None) -> SourceFile:
    return SourceFile(rel_path, size, mtime_ns, mtime_ns, fingerprint)


def test_the_scan_memory_keeps_when_a_file_last_changed_and_forgets_files_gone(store: Store) -> None:
    store.record_scan(
        library="tv", files=[source("a.mkv", 10, 1, "10:a"), source("b.mkv", 20, 1)], previous={}, now_ns=100,
        scanned_at=STAMP,
    )  # fmt: skip
    first = store.load_seen()
    assert first == {("tv", "a.mkv"): SeenFile(10, 1, "10:a", None), ("tv", "b.mkv"): SeenFile(20, 1, None, None)}

    store.record_scan(library="tv", files=[source("a.mkv", 11, 2)], previous=first, now_ns=200, scanned_at=STAMP)

    assert store.load_seen() == {("tv", "a.mkv"): SeenFile(11, 2, None, 200)}  # grew: a new fingerprint is due
    assert store.load_file_counts() == {"tv": 1}
    ledger = store.load_ledger()
    assert ledger.file_counts == {"tv": 1} and dict(ledger.seen) == store.load_seen()


def test_a_fingerprint_is_kept_while_the_file_holds_still(store: Store) -> None:
    store.record_scan(library="tv", files=[source("a.mkv", 10, 1, "10:a")], previous={}, now_ns=100, scanned_at=STAMP)
    store.record_scan(
        library="tv", files=[source("a.mkv", 10, 1)], previous=store.load_seen(), now_ns=200, scanned_at=STAMP
    )

    assert store.load_seen() == {("tv", "a.mkv"): SeenFile(10, 1, "10:a", None)}


def test_the_folders_a_walk_reached_are_remembered_with_their_files_and_forgotten_once_gone(store: Store) -> None:
    top, show = FolderVisit("", "1:2", 10, 11, False, 100), FolderVisit("Show", "1:3", 20, 21, True, 100, True)
    files = [SourceFile("a.mkv", 5, 7, 8), SourceFile("Show/b.mkv", 6, 9, 12), SourceFile("Show/c.mkv", 1, 3, 4)]
    store.record_scan(library="tv", files=files, previous={}, now_ns=100, scanned_at=STAMP, folders=[top, show])

    assert store.load_folders("tv") == {
        "": RememberedFolder("1:2", 10, 11, False, False, 1, 100, 8),
        "Show": RememberedFolder("1:3", 20, 21, True, True, 2, 100, 12),
    }
    assert store.load_folders("movies") == {}
    by_folder = store.load_folder_files("tv", ["Show", "", "Gone"])
    assert {folder: sorted(found) for folder, found in by_folder.items()} == {"": files[:1], "Show": sorted(files[1:])}

    grown = SourceFile("a.mkv", 50, 70, 80)
    store.record_scan(
        library="tv", files=[grown], previous=store.load_seen(), now_ns=200, scanned_at=STAMP, folders=[top]
    )

    # a.mkv grew: the folder's newest change is when the scan saw it (200)
    assert store.load_folders("tv") == {"": RememberedFolder("1:2", 10, 11, False, False, 1, 100, 200)}
    assert store.load_folder_files("tv", ["", "Show"]) == {"": [grown]}


def test_a_walk_is_recorded_by_writing_only_the_folders_it_listed_or_lost(store: Store) -> None:
    top, show = FolderVisit("", "1:2", 10, 11, False, 100), FolderVisit("Show", "1:3", 20, 21, False, 100)
    a, b, c = SourceFile("a.mkv", 5, 7, 8), SourceFile("Show/b.mkv", 6, 9, 12), SourceFile("Show/c.mkv", 1, 3, 4)
    recorded = store.record_walk(library="tv", listed={"": [a], "Show": [b, c]}, folders=[top, show], now_ns=100,
                                 scanned_at=STAMP)  # fmt: skip
    assert recorded == store.load_folders("tv")  # what it returns is what the store now holds
    assert store.load_seen() == {("tv", rel): SeenFile(f.size, f.mtime_ns, None, None) for rel, f in
                                 (("a.mkv", a), ("Show/b.mkv", b), ("Show/c.mkv", c))}  # fmt: skip
    assert store.load_file_counts() == {"tv": 3}

    # Show listed again (b grew, c gone, d new); the top kept, a's fingerprint read this pass.
    grown, d = SourceFile("Show/b.mkv", 60, 90, 120), SourceFile("Show/d.mkv", 2, 2, 2)
    recorded = store.record_walk(
        library="tv", listed={"Show": [grown, d]}, folders=[top, show._replace(mtime_ns=22, listed_at_ns=200)],
        fingerprints={"a.mkv": (5, 7, "5:a")}, now_ns=200, scanned_at=STAMP, full_seconds=1.5,
    )  # fmt: skip

    assert store.load_seen() == {
        ("tv", "a.mkv"): SeenFile(5, 7, "5:a", None),
        ("tv", "Show/b.mkv"): SeenFile(60, 90, None, 200),
        ("tv", "Show/d.mkv"): SeenFile(2, 2, None, None),
    }
    assert store.load_file_counts() == {"tv": 3}
    assert store.load_folders("tv")["Show"] == RememberedFolder("1:3", 22, 21, False, False, 2, 200, 200)
    assert recorded == store.load_folders("tv")
    assert store.load_full_passes() == {"tv": (STAMP, 1.5)}

    recorded = store.record_walk(library="tv", listed={}, folders=[top], now_ns=300, scanned_at=STAMP)  # Show gone
    assert recorded == store.load_folders("tv")

    assert list(store.load_seen()) == [("tv", "a.mkv")]
    assert list(store.load_folders("tv")) == [""] and store.load_file_counts() == {"tv": 1}


def test_the_archive_folders_a_walk_reached_are_remembered_with_the_names_of_those_it_listed(store: Store) -> None:
    tv, show = FolderVisit("TV", "1:2", 10, 11, False, 100), FolderVisit("TV/Show", "1:3", 20, 21, False, 100)
    recorded = store.record_archive(
        folders=[tv, show], listed={"TV": ["TV/a.mkv"], "TV/Show": ["TV/Show/b.mkv", "TV/Show/c"]}
    )
    assert recorded == store.load_archive_folders()

    assert store.load_archive_folders() == {
        "TV": RememberedFolder("1:2", 10, 11, False, False, 1, 100, 0),
        "TV/Show": RememberedFolder("1:3", 20, 21, False, False, 2, 100, 0),
    }
    names = store.load_archive_files(["TV/Show", "Movies"])
    assert {folder: sorted(found) for folder, found in names.items()} == {"TV/Show": ["TV/Show/b.mkv", "TV/Show/c"]}

    moved = tv._replace(mtime_ns=12, listed_at_ns=200)
    recorded = store.record_archive(folders=[moved], listed={"TV": []})  # TV/Show removed: TV listed again
    assert recorded == store.load_archive_folders()

    assert store.load_archive_folders() == {"TV": RememberedFolder("1:2", 12, 11, False, False, 0, 200, 0)}
    assert store.load_archive_files(["TV", "TV/Show"]) == {}


def test_the_last_full_pass_of_each_library_is_when_and_how_long(store: Store) -> None:
    store.record_scan(library="tv", files=[], previous={}, now_ns=1, scanned_at=STAMP, full_seconds=2.5)
    store.record_scan(library="tv", files=[], previous={}, now_ns=2, scanned_at="2024-05-01T13:00:00+00:00")
    store.record_scan(library="movies", files=[], previous={}, now_ns=2, scanned_at=STAMP)

    assert store.load_full_passes() == {"tv": (STAMP, 2.5)}  # a pass that was not full changes nothing


# --- users


def test_users_follow_the_config_and_a_generated_admin_is_marked_so(store: Store) -> None:
    store.add_generated_admin(name="admin", password_hash="$2b$h0", now=STAMP)
    store.apply_user_change(UserChange(UserChangeKind.ADD, "alice", "user", "$2b$h1"), now=STAMP)

    assert store.load_users() == (UserRecord("admin", "admin", "$2b$h0", True), UserRecord("alice", "user", "$2b$h1"))
    store.apply_user_change(UserChange(UserChangeKind.UPDATE, "admin", "admin", "$2b$h2"), now=STAMP)
    store.apply_user_change(UserChange(UserChangeKind.REMOVE, "alice", "user"), now=STAMP)

    assert store.find_user("admin") == UserRecord("admin", "admin", "$2b$h2", False)  # now the config's
    assert store.find_user("alice") is None
    assert store.load_ledger().users == (UserRecord("admin", "admin", "$2b$h2", False),)


# --- paused libraries, held-back jobs, ended tokens


def test_a_second_pause_keeps_the_first_ones_time_and_a_resume_says_whether_it_was_paused(store: Store) -> None:
    first = store.hold("tv", reason="paused by alice", since="2024-05-01T12:00:00+00:00")

    again = store.hold("tv", reason="paused by bob", since="2024-05-01T13:00:00+00:00")

    assert again == first == Hold("paused by alice", "2024-05-01T12:00:00+00:00")
    assert store.load_holds() == {"tv": first}
    assert store.release("tv") is True
    assert store.release("tv") is False
    assert store.load_holds() == {}


def test_why_jobs_are_held_back_is_what_was_last_recorded(store: Store) -> None:
    assert store.gate_reasons() == ((), None)

    store.set_gate(reasons=("cpu 95% ≥ 80%", "outside the windows"), now=T0)
    assert store.gate_reasons() == (("cpu 95% ≥ 80%", "outside the windows"), stamp(T0))
    store.set_gate(reasons=(), now=T0)
    assert store.gate_reasons() == ((), stamp(T0))


def test_a_logged_out_token_stays_ended_until_it_would_have_expired(store: Store) -> None:
    assert not store.is_revoked("t1")

    store.revoke_token("t1", expires_at="2024-05-01T13:00:00+00:00", now="2024-05-01T12:00:00+00:00")
    store.revoke_token("t1", expires_at="2024-05-01T13:00:00+00:00", now="2024-05-01T12:30:00+00:00")  # twice: fine
    assert store.is_revoked("t1")

    store.revoke_token("t2", expires_at="2024-05-01T15:00:00+00:00", now="2024-05-01T14:00:00+00:00")
    assert not store.is_revoked("t1")  # expired anyway: forgotten
    assert store.is_revoked("t2")


# --- backup (SQLite only: a PostgreSQL store is backed up with its own tools)


def test_a_sqlite_backup_is_a_store_with_the_same_state(sqlite_store: SqliteStore, tmp_path: Path) -> None:
    sqlite_store.record_output(entry("a.mkv"), encoded_at=STAMP, output_size=40)
    sqlite_store.hold("tv", reason="r", since=STAMP)
    target = tmp_path / "copy" / "hb2r.db"
    target.parent.mkdir()

    sqlite_store.backup_to(target)

    copy = open_store(target.parent)
    try:
        assert copy.load_ledger().entries == (entry("a.mkv"),)
        assert copy.load_holds() == {"tv": Hold("r", STAMP)}
    finally:
        copy.close()
