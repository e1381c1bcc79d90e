"""The PostgreSQL side of the store's connection seam: `PostgresDatabase` on a psycopg 3 connection.

Why an adapter and not psycopg as it is: the store modules write one SQL text for both
dialects, with SQLite's qmark `?` placeholders, and expect sqlite3's habits: every statement
commits by itself outside `transaction()`, a nested `transaction()` joins the outer one, rows
are plain tuples, and fetching from a statement that returns no rows gives None / []. This
adapter gives psycopg those habits, and turns psycopg's errors into `StoreError` (the original
chained as the cause; a failed connect's reworded, secrets removed), so nothing outside
`agent/store/` names psycopg.

Placeholders: `?` outside quotes becomes `%s`; a `%` becomes `%%` (psycopg would read it as a
placeholder). Single-quoted literals ('it''s ?') and double-quoted identifiers are copied as
they are. The store's SQL uses neither E'...' strings nor dollar quoting; scripts that do
(the schema's PL/pgSQL functions) go through `run_script`, which takes no parameters.

Parameters: they are bound on the client (psycopg's ClientCursor: each value quoted by libpq into
the text), not sent apart as typed values: an untyped literal takes its type from where it
stands, as SQLite's values do, so `? IS NULL` or `CASE WHEN ? ...` work unchanged, where
server-side binding fails with "could not determine data type of parameter $1". Booleans go
in as 0/1, as sqlite3 stores them (the flags are INTEGER columns in both schemas).

Transactions run at READ COMMITTED, PostgreSQL's default: unlike SQLite's BEGIN IMMEDIATE,
two transactions may both read a row and then both write it; a store module that reads
before it writes in PostgreSQL locks the rows it reads (`SELECT ... FOR UPDATE`).

The password is never logged nor put in a message: `redact_url` replaces it with `***`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

DEFAULT_PORT = 5432
CONNECT_TIMEOUT_SECONDS = 10


class StoreError(Exception):
    """The store failed (a lost server, refused credentials, a broken statement); the message says how.

    Stand-in until `agent.store.sql.StoreError` is on this branch: then this class becomes
    `from agent.store.sql import StoreError`, one line.
    """


@lru_cache(maxsize=1024)
def qmark_to_pyformat(sql: str) -> str:
    """Given SQL with `?` placeholders, return it with psycopg's `%s` (and `%` escaped as `%%`).

    A `?` inside a single-quoted literal or a double-quoted identifier stays; a `%` is doubled
    everywhere, literals too (psycopg reads the whole text for placeholders).
    """
    out: list[str] = []
    quote = ""
    for char in sql:
        if char == "%":
            out.append("%%")
        elif quote:
            out.append(char)
            if char == quote:
                quote = ""  # a doubled quote ('') closes and reopens: the same result
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        else:
            out.append(char)
    return "".join(out)


class PostgresCursor:
    """The rows of one statement, as plain tuples; no rows (None / []) where the statement returns none."""

    def __init__(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._cursor.description is None:
            return None
        try:
            return self._cursor.fetchone()
        except psycopg.Error as error:
            raise _store_error(error) from error

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._cursor.description is None:
            return []
        try:
            return self._cursor.fetchall()
        except psycopg.Error as error:
            raise _store_error(error) from error

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class PostgresDatabase:
    """A store `Database` on an autocommit psycopg 3 connection."""

    dialect = "postgres"

    def __init__(self, connection: psycopg.Connection[tuple[Any, ...]], *, location: str = "PostgreSQL") -> None:
        connection.autocommit = True
        connection.cursor_factory = psycopg.ClientCursor  # see "Parameters" above
        self.connection = connection  # for agent.store only: migrations, backups
        self.location = location  # the URL without its password, for messages

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PostgresCursor:
        try:
            # Always with a parameter sequence, even empty: psycopg then undoes the `%%` escaping.
            return PostgresCursor(self.connection.execute(qmark_to_pyformat(sql), _as_sqlite_would(params)))
        except psycopg.Error as error:
            raise _store_error(error) from error

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            with self.connection.cursor() as cursor:
                cursor.executemany(qmark_to_pyformat(sql), [_as_sqlite_would(row) for row in rows])
        except psycopg.Error as error:
            raise _store_error(error) from error

    def run_script(self, script: str) -> None:
        """Run several statements as they are: no placeholders, `%` and `?` untouched."""
        try:
            self.connection.execute(script)  # no parameters: sent as it is, several statements allowed
        except psycopg.Error as error:
            raise _store_error(error) from error

    @property
    def in_transaction(self) -> bool:
        return self.connection.info.transaction_status != pq.TransactionStatus.IDLE

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self.in_transaction:
            yield
            return
        self.execute("BEGIN")
        try:
            yield
            self.execute("COMMIT")
        except BaseException:
            # Also when COMMIT fails: never leave the connection inside a transaction that
            # every later block would join and none would commit.
            if self.in_transaction and not self.connection.closed:
                with suppress(psycopg.Error):  # a lost server: the original error tells more
                    self.connection.execute("ROLLBACK")
            raise

    def close(self) -> None:
        self.connection.close()


def _as_sqlite_would(params: Sequence[Any]) -> tuple[Any, ...]:
    """Return the parameters with booleans as 0/1: the schema keeps flags in INTEGER columns, as SQLite does."""
    return tuple(int(value) if isinstance(value, bool) else value for value in params)


def _store_error(error: psycopg.Error) -> StoreError:
    message = str(error).strip() or type(error).__name__
    return StoreError(message)


def redact_url(url: str) -> str:
    """Given a postgresql:// URL, return it with the password (if any) replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{_host_port(parts)}"
    return parts._replace(netloc=netloc).geturl()


def _host_port(parts: SplitResult) -> str:
    return parts.netloc.rpartition("@")[2]


def read_password_file(path: Path) -> str:
    """Return the password in the file (one line; trailing newline dropped); StoreError if unreadable or empty."""
    try:
        password = path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise StoreError(f"cannot read the PostgreSQL password file {path}: {reason}") from None
    if not password:
        raise StoreError(f"the PostgreSQL password file {path} is empty")
    return password


def connect_postgres(url: str, *, password_file: Path | None = None) -> PostgresDatabase:
    """Connect to the PostgreSQL database at `url`; return it as a `PostgresDatabase`.

    The password comes from `password_file` if given, else from the URL or libpq's usual
    places (PGPASSWORD, ~/.pgpass). Raise StoreError naming host, port, database and user,
    never the password, if the URL is malformed, the server cannot be reached or refuses us.
    """
    location = redact_url(url)
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise StoreError(f"store URL {location} is not a postgresql:// URL")
    password = read_password_file(password_file) if password_file is not None else None
    url_password = _url_password(url)
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as error:
        reason = _without_secrets(str(error).strip(), url_password)
        raise StoreError(f"store URL {location} is malformed: {reason}") from None
    where = (
        f"PostgreSQL at {params.get('host') or 'localhost'}:{params.get('port') or DEFAULT_PORT}, "
        f"database {params.get('dbname') or '(default)'}, user {params.get('user') or '(default)'}"
    )
    options: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "application_name": "hb2r"}
    if password is not None:
        options["password"] = password
    try:
        connection = psycopg.connect(url, autocommit=True, **options)
    except psycopg.Error as error:
        reason = _without_secrets(str(error).strip(), url_password, password)
        raise StoreError(f"cannot connect to {where}: {reason}") from None
    return PostgresDatabase(connection, location=location)


def _url_password(url: str) -> str | None:
    password = urlsplit(url).password
    return unquote(password) if password else None


def _without_secrets(message: str, *secrets: str | None) -> str:
    for secret in secrets:
        if secret:
            message = message.replace(secret, "***").replace(quote(secret, safe=""), "***")
    return message
