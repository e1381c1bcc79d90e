"""`SqliteStore`: the embedded one-host store, on the SQLite file in `paths.state_dir`.

Opening, WAL, migrations and the refusal of a newer schema live in `agent.store.db`; the SQL
in the store modules (shared with PostgreSQL through `DatabaseStore`). What only an SQLite
file can do is here: the consistent copy of the whole state through SQLite's backup API.
Which store a config names (this one, or PostgreSQL's) is `agent.store.choose`'s to say.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent.store import sqlite_files
from agent.store.database_store import DatabaseStore
from agent.store.db import open_database, open_readonly
from agent.store.sql import SqliteDatabase


class SqliteStore(DatabaseStore):
    database: SqliteDatabase

    def __init__(self, database: SqliteDatabase) -> None:
        super().__init__(database)

    def backup_to(self, target: Path) -> None:
        """Copy the whole state into the empty file target, as one snapshot, one self-contained file."""
        sqlite_files.copy_connection(self.database.connection, target)


def open_store(state_dir: Path) -> SqliteStore:
    """Open (creating and migrating it if needed) the state in state_dir; raise StateError if it cannot be used."""
    return SqliteStore(open_database(state_dir))


def open_store_readonly(state_dir: Path, *, warn: Callable[[str], None] = lambda message: None) -> SqliteStore | None:
    """Open the state in state_dir without writing anything (`hb2r plan`, `hb2r jobs`); None if there is none yet."""
    database = open_readonly(state_dir, warn=warn)
    return None if database is None else SqliteStore(database)
