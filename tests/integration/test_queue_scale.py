"""The reads behind /api/jobs, /api/status, /health, /metrics and the dispatcher's tick do the
same work at 20,000 jobs as at 2,000: a million rows must not make them a million times slower.

Work is counted, not timed: SQLite calls a progress handler every WORK_UNIT virtual-machine
instructions, which a loaded machine does not skew. A read that scans or sorts every matching
row does ten times the work on ten times the rows; one read from an index in order, or from
the tallies the triggers keep, does about the same. The rows are written by SQL here (a test
may; the agent may not outside agent/store) for speed, through the real triggers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.store.db import DATABASE_NAME, MIGRATIONS
from agent.store.jobs import JobState
from agent.store.order import ORDERS, QueueOrder
from agent.store.sqlite import SqliteStore, open_store

WORK_UNIT = 100  # VM instructions per call of the progress handler
SMALL, LARGE = 2_000, 20_000
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def insert_rows(execute_many: Callable[[str, Any], Any], count: int) -> None:
    """Insert `count` jobs (90 % done, 5 % cancelled, 3 % dead, 2 % queued; a quarter in movies)
    and as many ledger rows, with columns every schema since migration 10 has."""

    def state(index: int) -> str:
        share = index % 100
        return "done" if share < 90 else "cancelled" if share < 95 else "dead" if share < 98 else "queued"

    def stamp(index: int) -> str:
        return (NOW - timedelta(days=30) + timedelta(seconds=index)).isoformat(timespec="microseconds")

    def library(index: int) -> str:
        return "movies" if index % 4 == 0 else "tv"

    execute_many(
        "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, state,"
        " created_at, updated_at) VALUES (?, ?, ?, 'p', ?, 'new', ?, ?, ?)",
        (
            (library(index), f"e{index}.mkv", f"f{index}", f"out/e{index}.mkv", state(index), stamp(index),
             stamp(index))
            for index in range(count)
        ),
    )  # fmt: skip
    execute_many(
        "INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path, encoded_at,"
        " output_size) VALUES (?, ?, ?, ?, 0, 'p', ?, 'x', ?)",
        ((library(index), f"e{index}.mkv", f"f{index}", 1000 + index, f"out/e{index}.mkv", 300 + index)
         for index in range(count)),
    )  # fmt: skip


def filled(state_dir: Path, count: int) -> SqliteStore:
    """Return a store holding `count` jobs and as many ledger rows (`insert_rows`), the jobs
    with spread source sizes for the queue's size orders."""
    store = open_store(state_dir)
    with store.transaction():
        insert_rows(store.database.executemany, count)
        store.database.execute("UPDATE jobs SET source_size = ((id - 1) * 7919) % 100000")  # orders by size
    return store


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqliteStore, SqliteStore]]:
    small = filled(tmp_path_factory.mktemp("small"), SMALL)
    large = filled(tmp_path_factory.mktemp("large"), LARGE)
    yield small, large
    small.close()
    large.close()


def work(store: SqliteStore, read: Callable[[SqliteStore], Any]) -> int:
    """Return how many WORK_UNITs of SQLite instructions read(store) took."""
    calls = 0

    def count() -> int:
        nonlocal calls
        calls += 1
        return 0

    connection = store.database.connection
    connection.set_progress_handler(count, WORK_UNIT)
    try:
        read(store)
    finally:
        connection.set_progress_handler(None, WORK_UNIT)
    return calls


READS: dict[str, Callable[[SqliteStore], Any]] = {
    "counts (/health)": lambda store: store.counts(),
    "counts by library (/api/status, /metrics)": lambda store: store.counts_by_library(),
    "bytes by library (/api/status, /metrics)": lambda store: store.bytes_by_library(),
    "page of all jobs": lambda store: store.page(limit=101),
    "page of dead jobs": lambda store: store.page(state=JobState.DEAD, limit=101),
    "page of queued jobs": lambda store: store.page(state=JobState.QUEUED, limit=101),
    "page of running jobs (none)": lambda store: store.page(state=JobState.RUNNING, limit=101),
    "page of a library": lambda store: store.page(library="movies", limit=101),
    "page of a library's dead jobs": lambda store: store.page(library="movies", state=JobState.DEAD, limit=101),
    "a later page of a library": lambda store: store.page(library="movies", before_id=SMALL // 2, limit=101),
    "next runnable job (dispatcher tick)": lambda store: store.next_runnable(now=NOW, library_order=["tv", "movies"]),
    "running jobs' remaining bytes (dispatcher tick)": lambda store: store.remaining_bytes(other_than=None),
    **{
        f"next runnable job, {within} first, libraries {across}": (
            lambda store, within=within, across=across: store.next_runnable(
                now=NOW, library_order=["tv", "movies"], order=QueueOrder(default=within, across=across)
            )
        )
        for within in ORDERS
        for across in ("listed", "mixed")
    },
    # before the claims, which start jobs: the job moved must still be waiting
    "move a job to the front": lambda store: store.move_to_front(SMALL - 1, now=NOW),
    "next runnable job with one moved to the front": lambda store: (
        store.move_to_front(SMALL - 1, now=NOW), store.next_runnable(now=NOW, library_order=["tv", "movies"])
    ),
    **{
        f"claim, {within} first": (
            lambda store, within=within: store.claim(
                "alpha", libraries=["tv", "movies"], lease=timedelta(seconds=30), library_order=["tv", "movies"],
                order=QueueOrder(default=within, across="mixed"),
            )
        )
        for within in ORDERS
    },
}


@pytest.mark.parametrize("name", list(READS))
def test_a_read_does_not_grow_with_the_table(stores: tuple[SqliteStore, SqliteStore], name: str) -> None:
    small, large = stores
    read = READS[name]
    read(small), read(large)  # the same caches warm for both

    at_small, at_large = work(small, read), work(large, read)

    assert at_large <= at_small * 1.5 + 20, f"{name}: {at_small} units at {SMALL:,} jobs, {at_large} at {LARGE:,}"


def test_the_tallies_of_a_state_from_before_them_count_every_row(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    connection = sqlite3.connect(state_dir / DATABASE_NAME, isolation_level=None)
    for script in MIGRATIONS[:10]:  # the schema just before the tallies
        connection.executescript(script)
    connection.execute("PRAGMA user_version = 10")
    connection.execute("BEGIN")
    insert_rows(connection.executemany, 300)
    connection.execute("UPDATE jobs SET state = 'dead' WHERE id <= 10")
    connection.execute("UPDATE ledger SET output_size = NULL WHERE id <= 10")
    connection.execute("COMMIT")
    connection.close()

    store = open_store(tmp_path / "state")  # migrated: the tallies start from a count of the rows
    try:
        counted = store.database.execute("SELECT library, state, count(*) FROM jobs GROUP BY 1, 2").fetchall()
        summed = store.database.execute(
            "SELECT library, count(*), sum(CASE WHEN output_size IS NOT NULL THEN size ELSE 0 END),"
            " sum(coalesce(output_size, 0)) FROM ledger GROUP BY library"
        ).fetchall()
        by_library: dict[str, dict[str, int]] = {}
        for library, state, number in counted:
            by_library.setdefault(library, {})[state] = number
        assert store.counts_by_library() == by_library
        assert {library: tuple(row) for library, *row in summed} == {
            library: tuple(found) for library, found in store.bytes_by_library().items()
        }
        assert store.counts()[JobState.DEAD] == 9 + 10  # 3 in each hundred, and the ten made dead without triggers
    finally:
        store.close()
