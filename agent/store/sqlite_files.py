"""SQLite database files as files: snapshots, checks and WAL merging for `hb2r backup`/`restore`.

Why apart from the store: backup and restore work on a database file that no agent may have
open (and that must not be migrated), through SQLite's online backup API and PRAGMAs: the
only place outside the store modules where a file is read as an SQLite database. Errors of
SQLite are raised as StoreError; `DatabaseInUse` when another process holds the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.store.sql import StoreError


class DatabaseInUse(StoreError):
    """Another process has the database open, so it cannot be changed now."""


@dataclass(frozen=True, slots=True)
class FileFacts:
    problems: tuple[str, ...]  # PRAGMA integrity_check: ("ok",) when sound
    schema_version: int
    tables: frozenset[str]
    row_counts: dict[str, int]  # of the tables asked for that exist


def inspect(path: Path, *, count_rows_of: tuple[str, ...]) -> FileFacts:
    """Read path (read-only) as an SQLite database; return its integrity, version, tables and row counts.

    When the integrity check fails, only its problems are read. Raise StoreError if SQLite cannot read it.
    """
    try:
        with _closing(_open_readonly(path)) as db:
            problems = tuple(str(row[0]) for row in db.execute("PRAGMA integrity_check"))
            if problems != ("ok",):
                return FileFacts(problems, 0, frozenset(), {})
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            tables = frozenset(str(row[0]) for row in db.execute("SELECT name FROM sqlite_schema WHERE type = 'table'"))
            counts = {}
            for table in count_rows_of:
                if table in tables:  # a name from the caller's constant list, checked against the file's tables
                    counts[table] = int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    except sqlite3.Error as error:
        raise StoreError(str(error)) from error
    return FileFacts(problems, version, tables, counts)


def snapshot(source: Path, target: Path) -> None:
    """Copy the database source into the (empty) file target through the backup API, as one snapshot.

    Raise StoreError if it fails.
    """
    try:
        with _closing(_open_readonly(source)) as db:
            copy_connection(db, target)
    except sqlite3.Error as error:
        raise StoreError(str(error)) from error


def copy_connection(db: sqlite3.Connection, target: Path) -> None:
    """Copy what db holds into the (empty) file target as one snapshot, one self-contained file; raise StoreError."""
    try:
        with _closing(sqlite3.connect(target, isolation_level=None)) as copy:
            db.backup(copy)  # all pages in one step: one read transaction, so one commit's state
            copy.execute("PRAGMA journal_mode = DELETE")  # a WAL-mode source's header says WAL: make it one file
    except sqlite3.Error as error:
        raise StoreError(str(error)) from error


def merge_wal(database: Path) -> str | None:
    """Merge the database's WAL into it and leave it one file; return None, or why it cannot be read.

    Raise DatabaseInUse if another process has it open (it is left as it was).
    """
    try:
        with _closing(sqlite3.connect(database, isolation_level=None, timeout=0)) as db:
            mode = db.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
    except sqlite3.OperationalError as error:
        if "locked" in str(error) or "busy" in str(error):
            raise DatabaseInUse(str(error)) from None
        return str(error)
    except sqlite3.DatabaseError as error:  # not a database, malformed: keep it as it is
        return str(error)
    if str(mode).lower() != "delete":
        raise DatabaseInUse(f"journal mode stayed {mode}")
    return None


def _open_readonly(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None)


@contextmanager
def _closing(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    try:
        yield connection
    finally:
        connection.close()
