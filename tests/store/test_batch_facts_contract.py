"""What planning one batch of folders reads from a store, as every store must answer it
(`agent.store.batch_facts`): a folder's rows and no subfolder's, vanished rows (no seen row)
found by size and fingerprint, in path order (code points, whatever the database's collation)."""

from __future__ import annotations

import os

import psycopg
import pytest

from agent.domain import FolderVisit, LedgerEntry, SourceFile
from agent.store import batch_facts
from agent.store.postgres_store import open_postgres_store
from agent.store.protocol import Store
from tests.support.postgres import ROLE, PostgresCluster

STAMP = "2024-05-01T12:00:00+00:00"


def row(rel_path: str, fingerprint: str, size: int, *, library: str = "tv") -> LedgerEntry:
    return LedgerEntry(library, rel_path, fingerprint, size, 7, "p1", f"TV/{rel_path}")


A, B, C = row("Show/a.mkv", "A", 10), row("Show/b.mkv", "B", 20), row("Show/Season 1/c.mkv", "C", 30)
GONE, GONE_NO_OUTPUT = row("Gone/d.mkv", "A", 10), row("Gone/e.mkv", "E", 40)
ORPHAN = LedgerEntry("oldtv", "x.mkv", "X", 5, 7, "p1", "TV/x.mkv")
ODD_NAMES = [row(name, f"odd{number}", 50) for number, name in enumerate(["é.mkv", "a/b.mkv", "a b.mkv", "A.mkv"])]


@pytest.fixture
def facts(store: Store) -> Store:
    """A ledger of tv (and of `oldtv`, a library the config no longer names), the scan memory of
    what tv holds now (Show/, Show/Season 1/; Gone/ and the odd names vanished), the archive."""
    return _fill(store)


def _fill(store: Store) -> Store:
    for entry in [A, B, C, GONE, GONE_NO_OUTPUT, ORPHAN, *ODD_NAMES]:
        store.record_output(entry, encoded_at=STAMP)
    present = [SourceFile(entry.rel_path, entry.size, 7, 7) for entry in (A, B, C)]
    folders = [
        FolderVisit(rel, f"1:{number}", 1, 1, False, 1) for number, rel in enumerate(["", "Show", "Show/Season 1"])
    ]
    store.record_scan(library="tv", files=present, previous={}, now_ns=1, scanned_at=STAMP, folders=folders)
    outputs = [A, B, GONE, ORPHAN, *ODD_NAMES]
    store.record_archive(
        folders=[FolderVisit("TV", "2:1", 1, 1, False, 1)], listed={"TV": [entry.output_path for entry in outputs]}
    )
    return store


def test_a_batch_reads_its_own_folders_rows_and_not_its_subfolders(facts: Store) -> None:
    assert facts.ledger_in_folders("tv", ["Show"]) == {"Show/a.mkv": A, "Show/b.mkv": B}
    assert sorted(facts.seen_in_folders("tv", ["Show", "Gone"])) == ["Show/a.mkv", "Show/b.mkv"]
    assert facts.ledger_in_folders("movies", ["Show"]) == {}


def test_outputs_and_the_rows_of_unconfigured_libraries_are_found_by_path(facts: Store) -> None:
    assert facts.outputs_present({"TV/Show/a.mkv", "TV/Gone/e.mkv"}) == {"TV/Show/a.mkv"}
    assert facts.rows_holding_outputs({"TV/x.mkv", "TV/Show/a.mkv"}, other_than={"tv"}) == {"TV/x.mkv": ORPHAN}


def test_vanished_rows_are_found_by_size_and_fingerprint_the_first_by_path_with_its_output(facts: Store) -> None:
    assert facts.vanished_sizes("tv", [10, 20, 40]) == {10, 40}
    # A: Show/a.mkv is present, Gone/d.mkv vanished; E: vanished, but its output is gone; B: present.
    assert facts.vanished_with_fingerprints("tv", ["A", "B", "E"]) == {"A": GONE}
    assert facts.vanished_with_fingerprints("tv", ["A"], hidden=("Gone/",)) == {}


def test_vanished_rows_come_in_code_point_order_a_page_at_a_time(facts: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = sorted([GONE, GONE_NO_OUTPUT, *ODD_NAMES], key=lambda entry: entry.rel_path)
    assert [entry.rel_path for entry in expected][:4] == ["A.mkv", "Gone/d.mkv", "Gone/e.mkv", "a b.mkv"]

    assert list(facts.vanished_rows("tv")) == expected
    monkeypatch.setattr(batch_facts, "PAGE", 2)
    assert list(facts.vanished_rows("tv")) == expected


def test_the_remembered_file_count_is_the_sum_of_the_folders(facts: Store) -> None:
    assert facts.remembered_file_count("tv") == 3
    assert facts.remembered_file_count("movies") == 0


def test_the_breakers_counts_are_read_without_the_rows(facts: Store) -> None:
    assert facts.ledger_count("tv") == 9
    assert facts.count_under("tv", ["Gone/"], remembered=False) == 2
    assert facts.count_under("tv", ["Show/", "Gone/"], remembered=True) == 3  # Show/Season 1/ is under Show/
    assert facts.count_under("tv", ["Show/Season 1/"], remembered=True) == 1
    assert facts.outputs_recorded_in("tv", "TV") == 9
    assert facts.outputs_recorded_in("tv", "T") == 0
    assert facts.outputs_recorded_in("oldtv", "TV") == 1


def test_the_output_folders_the_ledger_points_into_are_read_without_the_rows(facts: Store) -> None:
    assert facts.recorded_output_folders() == {"TV"}
    facts.record_output(LedgerEntry("tv", "z.mkv", "Z", 1, 7, "p1", "Series/z.mkv"), encoded_at=STAMP)
    assert facts.recorded_output_folders() == {"TV", "Series"}


def test_fingerprints_read_after_a_walk_is_recorded_are_remembered_while_size_and_mtime_hold(facts: Store) -> None:
    facts.remember_fingerprints("tv", {"Show/a.mkv": (10, 7, "fp-a"), "Show/b.mkv": (20, 8, "fp-b-older")})

    seen = facts.seen_in_folders("tv", ["Show"])
    assert seen["Show/a.mkv"].fingerprint == "fp-a"
    assert seen["Show/b.mkv"].fingerprint is None  # the file changed since that fingerprint was read


def test_postgresql_gives_code_point_order_whatever_the_databases_collation(postgres_cluster: PostgresCluster) -> None:
    name = f"hb2r_icu_{os.getpid()}"
    try:
        with psycopg.connect(postgres_cluster.admin_url, autocommit=True) as admin:
            admin.execute(
                f'CREATE DATABASE "{name}" OWNER {ROLE} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE \'en\''
                " LOCALE 'C.utf8'"
            )
    except psycopg.Error as error:  # a server built without ICU cannot make one
        pytest.skip(f"no database with a natural-language collation here: {error}")
    try:
        store = open_postgres_store(postgres_cluster.url(name))
        try:
            _fill(store)
            by_database = [row[0] for row in store.database.execute(
                "SELECT rel_path FROM ledger WHERE library = 'tv' ORDER BY rel_path").fetchall()]  # fmt: skip
            assert by_database != sorted(by_database)  # this database's own order is not code point order

            assert [entry.rel_path for entry in store.vanished_rows("tv")] == sorted(
                entry.rel_path for entry in [GONE, GONE_NO_OUTPUT, *ODD_NAMES]
            )
            assert store.count_under("tv", ["a/"], remembered=False) == 1  # "a b.mkv" is not under "a/"
        finally:
            store.close()
    finally:
        postgres_cluster.drop_database(name)
