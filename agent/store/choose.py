"""Which store the config names, opened the way each command needs it.

`store.url: sqlite` (the default) is the SQLite file in `paths.state_dir`; a `postgresql://`
URL is a PostgreSQL database (`agent.store.postgres_store`), its password from
`store.password_file` when set, else the URL or libpq's PGPASSWORD / ~/.pgpass. Every command
that opens the state comes through here, so `hb2r run`, `plan`, `jobs`, `retry` and the API
work on either:
- `store_for(config)`: read and write, migrated (`hb2r retry`);
- `store_for_run(config)`: the same, its PostgreSQL connection named after the host
  (several agents share one database; on SQLite the state folder's flock keeps one agent);
- `readonly_store_for(config)`: writes nothing (`hb2r plan`, `hb2r jobs`); None if there is
  no state yet; `read_state(config, read)` opens it, reads and closes it for a command.

A store that cannot be opened raises StoreError (PostgreSQL: one line naming host:port/database,
never the password) or StateError (SQLite's file). The driver for PostgreSQL (psycopg) is the
`hb2r[postgres]` extra: it is imported only when the config names PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, overload

from agent.store.db import StateError, database_path
from agent.store.sql import StoreError
from agent.store.sqlite import open_store, open_store_readonly

if TYPE_CHECKING:
    from agent.config.models import Config
    from agent.store.postgres_store import PostgresStore
    from agent.store.protocol import Store

T = TypeVar("T")


def store_location(config: Config) -> str:
    """Return where the config's state lives, for messages: the SQLite file, or PostgreSQL host:port/database."""
    if config.store.is_postgres:
        from agent.config.store_url import parse_postgres_url

        parts = parse_postgres_url(config.store.url)
        return f"PostgreSQL store {parts.host}:{parts.port}/{parts.database}"
    return f"state database {database_path(config.paths.state_dir)}"


def no_state_yet(config: Config) -> str:
    """Return the words for a store that holds no state yet (nothing opened, nothing made)."""
    if config.store.is_postgres:
        return f"the {store_location(config)} holds no hb2r state yet"
    return f"there is no state database at {database_path(config.paths.state_dir)} yet"


def store_for(config: Config) -> Store:
    """Open the config's store for reading and writing (migrating it); raise StoreError or StateError."""
    if config.store.is_postgres:
        return _open_postgres(config)
    return open_store(config.paths.state_dir)


def store_for_run(config: Config) -> Store:
    """Open the config's store for `hb2r run`; on PostgreSQL name its connection after this host."""
    if not config.store.is_postgres:
        return open_store(config.paths.state_dir)
    store = _open_postgres(config)
    try:
        store.name_connection(host=config.host.name, lease=config.store.lease)
    except BaseException:
        store.close()
        raise
    return store


def readonly_store_for(config: Config, *, warn: Callable[[str], None] = lambda message: None) -> Store | None:
    """Open the config's store without writing anything; None if it holds no state yet."""
    if config.store.is_postgres:
        return _open_postgres(config, read_only=True)
    return open_store_readonly(config.paths.state_dir, warn=warn)


def read_state(
    config: Config, read: Callable[[Store], T], *, warn: Callable[[str], None] = lambda message: None
) -> T | None:
    """Open the config's store read-only, return `read(store)` and close it; None if it holds no state yet.

    Raise StateError whose message names the store if it cannot be opened or read.
    """
    try:
        store = readonly_store_for(config, warn=warn)
        if store is None:
            return None
        try:
            return read(store)
        finally:
            store.close()
    except StoreError as error:  # unreachable, or e.g. a table lost to a damaged disk or a bad restore
        raise StateError(store_failure(config, error)) from error


def store_failure(config: Config, error: Exception) -> str:
    """Return the store's error, saying where the state is unless it does already."""
    location = store_location(config)
    message = str(error) or type(error).__name__
    named = location.rsplit(" ", 1)[-1] in message or "postgresql://" in message  # a redacted URL
    return message if named else f"{location}: {message}"


def has_state(config: Config) -> bool:
    """Return whether the store holds state: the SQLite file exists, or the PostgreSQL database has
    hb2r's schema (asked read-only: nothing is made to find out). Raise StoreError if it cannot be asked."""
    if config.store.is_postgres:
        found = _open_postgres(config, read_only=True)
        if found is None:
            return False
        found.close()
        return True
    try:
        return database_path(config.paths.state_dir).is_file()
    except OSError:
        return True  # let opening it say what is wrong


@overload
def _open_postgres(config: Config) -> PostgresStore: ...
@overload
def _open_postgres(config: Config, *, read_only: bool) -> PostgresStore | None: ...
def _open_postgres(config: Config, *, read_only: bool = False) -> PostgresStore | None:
    try:
        from agent.store import postgres_store
    except ImportError as error:
        raise StoreError(
            f"store.url names a PostgreSQL database, but its driver is not installed ({error}): "
            "install hb2r with the postgres extra (pip install 'hb2r[postgres]')"
        ) from None
    url, password_file = config.store.url, config.store.password_file
    if read_only:
        return postgres_store.open_postgres_store_readonly(url, password_file=password_file)
    return postgres_store.open_postgres_store(url, password_file=password_file)
