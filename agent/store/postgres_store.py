"""`PostgresStore`: the store on a PostgreSQL database, for the day several hosts share a library.

The SQL is the store modules' own (`DatabaseStore`); what differs is opening it: connect (the
password from `store.password_file`, else the URL or libpq's PGPASSWORD / ~/.pgpass), then
bring the schema up to date (`agent.store.postgres_schema`, refusing a newer one).

Two ways of opening, and a lock (`agent.store.choose` picks for each command):
- `open_postgres_store(url)`: read and write, migrating first (`hb2r run`, `hb2r retry`, the API);
- `open_postgres_store_readonly(url)`: every statement in a read-only transaction
  (`default_transaction_read_only`), so `hb2r plan` and `hb2r jobs` cannot write even by
  mistake; nothing is migrated: an empty database is "no state yet" (None), one at an older
  schema is refused with what to do (start `hb2r run` once, it migrates);
- `hold_run_lock(host=...)`: `hb2r run` holds a session advisory lock (RUN_LOCK, per database)
  for its whole life. Until jobs are claimed by leases (a later step of issue 11), two agents on
  one database would both encode the same queue: the second one is refused at start, told
  which host holds the store. The holder writes its host name and pid into `agent_status`
  (key RUN_HOLDER) and into its `application_name`, which `pg_stat_activity` shows operators.
  The lock is the connection's: it goes when the agent exits or its connection is lost. A lost
  connection is opened again by the next statement (`PostgresDatabase`), which takes the lock
  again first; while another agent holds it meanwhile, every statement fails (StoreInUse, and
  /health says unhealthy) and nothing is written.
  Several hosts sharing one store come with leases; until then it is one agent per database.

The change feed (`last_change` / `changed_after`, what /api/realtime follows): jobs.change_seq
comes from a sequence (`agent.store.postgres_schema`, migration 7), numbered when a statement
writes the row, not when its transaction commits. A reader therefore sees the numbers in the
order they commit when one writer's transactions never overlap: the agent itself (one
connection, used from its one event-loop thread; the run lock keeps a second agent out), and
the API inside it. A write by another process at the same moment (`hb2r retry` in a shell
while the agent writes) can commit a lower number after the feed read past it: the live feed
misses that one change (the status page shows it on its next full read). Several writers
(leases, a later step) will need numbers taken at commit time.

Text order: PostgreSQL sorts text by the database's collation (often a language's), SQLite by
bytes. Nothing here depends on a collation's order but names listed to people (users, paused
libraries), which the store modules sort in Python so both stores give the same order; time
stamps are fixed-width ISO-8601 and compare the same under any collation.
"""

from __future__ import annotations

import os
from pathlib import Path

from agent.store.database_store import DatabaseStore
from agent.store.postgres import PostgresDatabase, connect_postgres
from agent.store.postgres_schema import SCHEMA_VERSION, migrate, schema_version
from agent.store.sql import StoreError

# pg_try_advisory_lock key of `hb2r run`: "hb2r" in ASCII, then "run!" (the migrations' lock is "hb2r" alone).
RUN_LOCK = 0x6862327272756E21
RUN_HOLDER = "run_holder"  # agent_status key: which host and pid hold the run lock


class StoreInUse(StoreError):
    """Another `hb2r run` holds this PostgreSQL store."""


class PostgresStore(DatabaseStore):
    database: PostgresDatabase

    def __init__(self, database: PostgresDatabase) -> None:
        super().__init__(database)

    def backup_to(self, target: Path) -> None:
        raise StoreError(f"{self.database.location}: a PostgreSQL store is backed up by `hb2r backup` (pg_dump)")

    def hold_run_lock(self, *, host: str, now: str) -> None:
        """Take the store's run lock and keep it: taken again whenever a lost connection is opened again.

        Raise StoreInUse, naming the holder's host, if another agent holds it (at start, or when
        this one comes back after losing its connection: then each statement fails so, and the
        next one tries again).
        """
        self._take_run_lock(host=host, now=now)
        self.database.on_reconnect = lambda: self._take_run_lock(host=host, now=now)

    def _take_run_lock(self, *, host: str, now: str) -> None:
        row = self.database.execute("SELECT pg_try_advisory_lock(?)", (RUN_LOCK,)).fetchone()
        if row is None or not row[0]:
            holder = self.database.execute("SELECT value FROM agent_status WHERE key = ?", (RUN_HOLDER,)).fetchone()
            who = f"the agent on host {holder[0]}" if holder is not None else "another agent"
            raise StoreInUse(
                f"{who} is running on this store; one `hb2r run` per PostgreSQL store until several hosts "
                "can share one (leases): stop the other agent, or give this one its own database"
            )
        holder_text = f"{host} (pid {os.getpid()})"
        self.database.execute("SELECT set_config('application_name', ?, false)", (f"hb2r run on {host}"[:63],))
        self.database.execute(
            """
            INSERT INTO agent_status (key, value, updated_at) VALUES (?, ?, ?)
            ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
            """,
            (RUN_HOLDER, holder_text, now),
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
