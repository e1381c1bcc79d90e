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

The password is never logged nor put in a message: `agent.config.store_url.redact_url` and
`hide_secrets` replace it (one redaction rule for the config and the store).
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from agent.config.store_url import hide_secrets, redact_url, url_passwords
from agent.store.sql import StoreError

DEFAULT_PORT = 5432
CONNECT_TIMEOUT_SECONDS = 10
KEEPALIVE_IDLE_SECONDS = 5
KEEPALIVE_INTERVAL_SECONDS = 2
KEEPALIVE_COUNT = 2
UNACKNOWLEDGED_MS = 8_000  # data the server has not acknowledged for this long: the link is gone
RECONNECT_FIRST_SECONDS = 1.0
RECONNECT_MAX_SECONDS = 30.0


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
    """A store `Database` on an autocommit psycopg 3 connection, opened again when it was lost.

    A connection the server or the network ended is opened again (with `reconnect`) by the
    next statement or transaction that begins outside a transaction, then `on_reconnect` runs
    (the connection is named again there); a failed attempt is repeated no sooner than a backoff
    of RECONNECT_FIRST_SECONDS doubling up to RECONNECT_MAX_SECONDS, meanwhile every statement
    fails at once with the last reason. A connection lost inside a transaction fails that
    transaction: the rest of it is never run on a new connection in pieces.
    """

    dialect = "postgres"

    def __init__(
        self,
        connection: psycopg.Connection[tuple[Any, ...]],
        *,
        location: str = "PostgreSQL",
        reconnect: Callable[[], psycopg.Connection[tuple[Any, ...]]] | None = None,
    ) -> None:
        self._use(connection)
        self.location = location  # the URL without its password, for messages
        self.on_reconnect: Callable[[], None] | None = None
        self._reconnect = reconnect
        self._depth = 0  # transaction() blocks open
        self._closed = False
        self._retry_at = 0.0
        self._delay = 0.0
        self._last_failure: StoreError | None = None

    def _use(self, connection: psycopg.Connection[tuple[Any, ...]]) -> None:
        connection.autocommit = True
        connection.cursor_factory = psycopg.ClientCursor  # see "Parameters" above
        self.connection = connection  # for agent.store only: migrations, backups

    def _connected(self) -> psycopg.Connection[tuple[Any, ...]]:
        """Return the connection, opened again first if it was lost outside a transaction."""
        if not self.connection.closed or self._closed or self._reconnect is None or self._depth > 0:
            return self.connection
        if self._last_failure is not None and time.monotonic() < self._retry_at:
            raise type(self._last_failure)(str(self._last_failure))
        try:
            connection = self._reconnect()
            self._use(connection)
            if self.on_reconnect is not None:
                try:
                    self.on_reconnect()
                except BaseException:
                    connection.close()  # without what on_reconnect gives it must not be used
                    raise
        except StoreError as error:
            self._delay = min(max(self._delay * 2, RECONNECT_FIRST_SECONDS), RECONNECT_MAX_SECONDS)
            self._retry_at = time.monotonic() + self._delay
            self._last_failure = error
            raise
        self._delay, self._last_failure = 0.0, None
        return connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> PostgresCursor:
        connection = self._connected()
        try:
            # Always with a parameter sequence, even empty: psycopg then undoes the `%%` escaping.
            return PostgresCursor(connection.execute(qmark_to_pyformat(sql), _as_sqlite_would(params)))
        except psycopg.Error as error:
            raise _store_error(error) from error

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        connection = self._connected()
        try:
            with connection.cursor() as cursor:
                cursor.executemany(qmark_to_pyformat(sql), [_as_sqlite_would(row) for row in rows])
        except psycopg.Error as error:
            raise _store_error(error) from error

    def run_script(self, script: str) -> None:
        """Run several statements as they are: no placeholders, `%` and `?` untouched."""
        connection = self._connected()
        try:
            connection.execute(script)  # no parameters: sent as it is, several statements allowed
        except psycopg.Error as error:
            raise _store_error(error) from error

    @property
    def in_transaction(self) -> bool:
        return self.connection.info.transaction_status != pq.TransactionStatus.IDLE

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._depth > 0:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self.execute("BEGIN")
        self._depth = 1
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
        finally:
            self._depth = 0

    def close(self) -> None:
        self._closed = True
        self.connection.close()


def _as_sqlite_would(params: Sequence[Any]) -> tuple[Any, ...]:
    """Return the parameters with booleans as 0/1: the schema keeps flags in INTEGER columns, as SQLite does."""
    return tuple(int(value) if isinstance(value, bool) else value for value in params)


def _store_error(error: psycopg.Error) -> StoreError:
    message = str(error).strip() or type(error).__name__
    return StoreError(message)


def read_password_file(path: Path) -> str:
    """Return the password in the file (one line; trailing newline dropped).

    Raise StoreError naming the file if it is missing, unreadable, empty, or readable by its
    group or others (a password others may read is no secret: chmod 600).
    """
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                who = " and ".join(
                    name for bit, name in ((stat.S_IRGRP, "its group"), (stat.S_IROTH, "others")) if mode & bit
                )
                raise StoreError(
                    f"the PostgreSQL password file {path} may be read by {who} "
                    f"(mode {stat.S_IMODE(mode):04o}): chmod 600 {path}"
                )
            password = file.read().decode("utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise StoreError(f"cannot read the PostgreSQL password file {path}: {reason}") from None
    if not password:
        raise StoreError(f"the PostgreSQL password file {path} is empty")
    return password


def connect_postgres(url: str, *, password_file: Path | None = None, read_only: bool = False) -> PostgresDatabase:
    """Connect to the PostgreSQL database at `url`; return it as a `PostgresDatabase`.

    The password comes from `password_file` if given, else from the URL or libpq's usual
    places (PGPASSWORD, ~/.pgpass). With read_only, every transaction of the session is read-only
    (the server refuses any write). Raise StoreError naming host, port, database and user,
    never the password, if the URL is malformed, the server cannot be reached or refuses us.
    """
    location = redact_url(url)
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise StoreError(f"store URL {location} is not a postgresql:// URL")
    password = read_password_file(password_file) if password_file is not None else None
    url_secrets = url_passwords(url)
    try:
        params = conninfo_to_dict(url)
    except psycopg.Error as error:
        reason = hide_secrets(_one_line(str(error)), *url_secrets)
        raise StoreError(f"store URL {location} is malformed: {reason}") from None
    where = (
        f"PostgreSQL at {params.get('host') or 'localhost'}:{params.get('port') or DEFAULT_PORT}/"
        f"{params.get('dbname') or '(default)'} as user {params.get('user') or '(default)'}"
    )
    options: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": "hb2r",
        # A cut link must fail a statement in seconds, not hang on TCP's retransmissions for many
        # minutes: the host then gives up its encodes as lost instead of believing it still holds them.
        "keepalives": 1,
        "keepalives_idle": KEEPALIVE_IDLE_SECONDS,
        "keepalives_interval": KEEPALIVE_INTERVAL_SECONDS,
        "keepalives_count": KEEPALIVE_COUNT,
        "tcp_user_timeout": UNACKNOWLEDGED_MS,
    }
    if password is not None:
        options["password"] = password
    if read_only:
        options["options"] = "-c default_transaction_read_only=on"

    def connect() -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return psycopg.connect(url, autocommit=True, **options)
        except psycopg.Error as error:
            reason = hide_secrets(_one_line(str(error)), *url_secrets, password)
            raise StoreError(f"cannot connect to {where}: {reason}") from None

    return PostgresDatabase(connect(), location=location, reconnect=connect)


def _one_line(text: str) -> str:
    """Return libpq's message (often several lines and tab-indented hints) as one line."""
    return "; ".join(line.strip() for line in text.strip().splitlines() if line.strip())
