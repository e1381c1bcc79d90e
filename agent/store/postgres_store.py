"""`PostgresStore`: the store on a PostgreSQL database, for the day several hosts share a library.

The SQL is the store modules' own (`DatabaseStore`); what differs is opening it: connect (the
password from `store.password_file`, else the URL or libpq's PGPASSWORD / ~/.pgpass), then
bring the schema up to date (`agent.store.postgres_schema`, refusing a newer one).

Two ways of opening, and a name (`agent.store.choose` picks for each command):
- `open_postgres_store(url)`: read and write, migrating first (`hb2r run`, `hb2r retry`, the API);
- `open_postgres_store_readonly(url)`: every statement in a read-only transaction
  (`default_transaction_read_only`), so `hb2r plan` and `hb2r jobs` cannot write even by
  mistake; nothing is migrated: an empty database is "no state yet" (None), one at an older
  schema is refused with what to do (start `hb2r run` once, it migrates);
- `name_connection(host=..., lease=...)`: `hb2r run` names its connection `hb2r run on HOST`
  (`application_name`, which `pg_stat_activity` shows operators), again after a reconnect, and
  has the server end any transaction of it left idle longer than the lease
  (`idle_in_transaction_session_timeout`): a host frozen inside a transaction (SIGSTOP, a paused
  VM: its socket stays open, so the server would wait for ever) would otherwise keep the rows
  it wrote locked, and the other hosts could never take its jobs back. No transaction of
  `hb2r run` waits on anything slow between its statements (a publish syncs the file to disk
  before its transaction begins), so one idle that long is a host that stopped.
  Several agents share one database: job claims are leased (`agent.store.leases`) and one
  host at a time plans (`agent.store.leader`), so no agent is refused for another running.
  (Before those existed, a session advisory lock let only one `hb2r run` in per database.)

The change feed (`last_change` / `changed_after`, what /api/realtime follows): jobs.change_seq
comes from a sequence (`agent.store.postgres_schema`, migration 7), numbered when a statement
writes the row, not when its transaction commits. A reader therefore sees the numbers in the
order they commit when one writer's transactions never overlap: one agent (one connection,
used from its one event-loop thread) and the API inside it. A write by another process at the
same moment (another host's agent claiming or finishing a job, `hb2r retry` in a shell) can
commit a lower number after the feed read past it: the live feed misses that one change (the
status page shows it on its next full read, at the latest when another change of that job
comes). Numbers taken at commit time would close that gap; not done yet.

Text order: PostgreSQL sorts text by the database's collation (often a language's), SQLite by
bytes. Nothing here depends on a collation's order but names listed to people (users, paused
libraries), which the store modules sort in Python so both stores give the same order; time
stamps are fixed-width ISO-8601 and compare the same under any collation.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from agent.store.database_store import DatabaseStore
from agent.store.leader import session_name
from agent.store.postgres import PostgresDatabase, connect_postgres
from agent.store.postgres_schema import SCHEMA_VERSION, migrate, schema_version
from agent.store.sql import StoreError


class PostgresStore(DatabaseStore):
    database: PostgresDatabase

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database)

    def backup_to(self, target: Path) -> None:
        raise StoreError(f"{self.database.location}: a PostgreSQL store is backed up by `hb2r backup` (pg_dump)")

    def name_connection(self, *, host: str, lease: timedelta) -> None:
        """Name the connection `hb2r run on HOST` in pg_stat_activity and end its transactions left
        idle longer than lease (at least a second), now and after every reconnect."""
        idle_ms = max(1000, int(lease.total_seconds() * 1000))
        self._configure(host, idle_ms)
        self.database.on_reconnect = lambda: self._configure(host, idle_ms)

    def _configure(self, host: str, idle_ms: int) -> None:
        self.database.execute(
            "SELECT set_config('application_name', ?, false), "
            "set_config('idle_in_transaction_session_timeout', ?, false)",
            (session_name(host), str(idle_ms)),
        )


def open_postgres_store(url: str, *, password_file: Path | None = None) -> PostgresStore:
    """Connect to the database at url and bring its schema up to date; return the store.

    Raise StoreError naming host:port and database (never the password) if it cannot be reached,
    refuses us, or has a schema newer than this hb2r knows.
    """
    database = connect_postgres(url, password_file=password_file)
    try:
        migrate(database)
    except BaseException:
        database.close()
        raise
    return PostgresStore(database)


def open_postgres_store_readonly(url: str, *, password_file: Path | None = None) -> PostgresStore | None:
    """Connect to the database at url for reading only; return the store, or None if it holds no state yet.

    Raise StoreError if it cannot be reached, or its schema is not the one this hb2r knows.
    """
    database = connect_postgres(url, password_file=password_file, read_only=True)
    try:
        version = schema_version(database)
        if version == 0:
            database.close()
            return None
        if version != SCHEMA_VERSION:
            newer = version > SCHEMA_VERSION
            raise StoreError(
                f"store schema {version} is {'newer' if newer else 'older'} than this hb2r "
                f"knows ({SCHEMA_VERSION}): "
                + ("upgrade hb2r" if newer else "start `hb2r run` once (it migrates the store), then ask again")
            )
    except BaseException:
        database.close()
        raise
    return PostgresStore(database)
