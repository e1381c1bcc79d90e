"""The connection seam every store module writes its SQL against, and the SQLite side of it.

Why a seam: the same store modules must run on SQLite (one host, embedded) and on PostgreSQL
(several hosts). Each module takes a `Database` and writes plain SQL with qmark `?`
placeholders; an adapter per dialect runs it. SQLite's adapter is `SqliteDatabase` here; the
PostgreSQL one (`agent.store.postgres.PostgresDatabase`) rewrites `?` to `%s`.

Rules for the SQL in the store modules, so it runs in both dialects:
- `?` placeholders only (no named `:x` ones); columns named, never `SELECT *`, so rows are
  plain tuples read by position;
- `INSERT ... ON CONFLICT (...) DO UPDATE/NOTHING`, `RETURNING`; no `INSERT OR IGNORE/REPLACE`,
  no SQLite-only functions; where a statement must differ by dialect, the module branches on
  `database.dialect` and says why in a comment.
- Outside `transaction()` every statement commits by itself (autocommit).

Errors of the database itself surface as `StoreError` (the original chained as its cause), so
callers outside `agent/store/` never name sqlite3 or psycopg.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol, cast


class StoreError(Exception):
    """The store failed (I/O error, a damaged or locked database, a lost server); the message says how."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> tuple[Any, ...] | None: ...

    def fetchall(self) -> list[tuple[Any, ...]]: ...


class Database(Protocol):
    dialect: str  # "sqlite" | "postgres"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Outermost: BEGIN (sqlite: BEGIN IMMEDIATE) / COMMIT / ROLLBACK on error; nested use joins the outer one."""
        ...

    def close(self) -> None: ...


class SqliteDatabase:
    """A `Database` on an autocommit sqlite3 connection (`isolation_level=None`).

    Its cursors are sqlite3's own (they also iterate); sqlite3.Error is raised as StoreError.
    """

    dialect = "sqlite"

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection  # for agent.store only: backups, migrations

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            # sqlite3.Cursor is a Cursor; typeshed only types its rowcount read-only and its rows as Any.
            return cast(Cursor, self.connection.execute(sql, params))
        except sqlite3.Error as error:
            raise _store_error(error) from error

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self.connection.executemany(sql, rows)
        except sqlite3.Error as error:
            raise _store_error(error) from error

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        connection = self.connection
        if connection.in_transaction:
            yield
            return
        self.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.execute("COMMIT")
        except BaseException:
            # Also when COMMIT itself fails (SQLITE_BUSY, a full disk): SQLite may leave the
            # transaction open, and every later block would join it and never be committed.
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    @property
    def in_transaction(self) -> bool:
        return self.connection.in_transaction

    def close(self) -> None:
        self.connection.close()


def _store_error(error: sqlite3.Error) -> StoreError:
    return StoreError(f"{type(error).__name__}: {error}" if not str(error) else str(error))
