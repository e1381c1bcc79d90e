"""`hb2r store migrate`: copy a one-host SQLite state into an empty PostgreSQL database, once.

Why a copy of rows and not a dump: the two schemas are the same tables and columns under the
same names (agent/store/postgres_schema.py), so the copy is plain `SELECT` on one side and
`INSERT` on the other, through the `Database` seam, column by column, with nothing to
translate. The list of tables and columns is read from both databases, not written here: a
table or column that one schema has and the other lacks stops the copy before it starts
(a new migration added to one dialect only must not lose data silently).

What makes it safe to switch:
- The agent is stopped: the copy holds the state folder's agent lock, so no agent runs or
  starts meanwhile, and the SQLite state is read in one read transaction: one commit's state.
- The SQLite file is only read, never written (`open_readonly`: a state at an older schema is
  copied into memory and migrated there; a newer one is refused). Going back to SQLite is
  pointing `store.url` at it again: it is as it was before the copy (what the agent did on
  PostgreSQL since is not in it).
- Everything on the PostgreSQL side is ONE transaction: the schema's migrations (when the
  database is new), the check that it holds no hb2r rows, the rows, the sequences, the running
  jobs put back in the queue, and the count check. Any failure rolls all of it back: the
  target is as it was. The tables are locked for the transaction and the schema's advisory
  lock is held, so an agent starting on the target meanwhile waits, then finds the copy.
- The target must be empty: no schema (it is made here), or this hb2r's schema with no rows
  in any table. Another schema version, or any row, is refused with what is there.
- `running` jobs become `queued`, as at an agent's start after a crash (`requeue_running`):
  their temp files belong to this host and the agent removes them when it starts.
- Ids are copied as they are; each identity sequence is then set past the highest copied id,
  and the change-number sequence past the highest copied change number, so new rows never
  reuse one. Row triggers are disabled during the copy (the change-number trigger would
  renumber every job) and enabled again before the running jobs are requeued.
- After the copy, each table's row count in PostgreSQL must equal what was read from SQLite,
  inside the same transaction; a difference rolls everything back.

`setval` is not transactional: after a failed copy into a target that already had the empty
schema, its sequences may stay advanced. Ids then start higher; nothing else changes.
Each table is read whole before it is written: memory grows with the largest table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from agent.config.store_url import redact_url
from agent.store import jobs
from agent.store.db import StateError, database_path, open_readonly
from agent.store.lock import agent_lock
from agent.store.postgres import PostgresDatabase, connect_postgres
from agent.store.postgres_schema import MIGRATION_LOCK, SCHEMA_VERSION, migrate, schema_version
from agent.store.sql import Database, SqliteDatabase, StoreError

MIGRATE_PURPOSE = "store migrate"
# Tables only PostgreSQL has, by design (its version lives in a table): a migration that adds a
# table to PostgreSQL alone (e.g. hosts, leases) names it here, or every copy is refused.
POSTGRES_ONLY_TABLES = frozenset({"schema_version", "job_tally_changes", "ledger_tally_changes"})
# Sequences not owned by a column (identity columns' are found in the catalog): which column each feeds.
COUNTER_SEQUENCES: Mapping[str, tuple[str, str]] = {
    "jobs_change_seq": ("jobs", "change_seq"),
    "jobs_lease_token": ("jobs", "lease_token"),
}


class MigrateError(Exception):
    """The state cannot be copied; the message says why. Nothing was written to the target."""


@dataclass(frozen=True, slots=True)
class Copied:
    """What one copy did."""

    source: Path
    source_schema: int  # the SQLite file's own version (copied at this hb2r's, migrated in memory)
    target: str  # the URL with its password replaced
    rows: Mapping[str, int]  # per table, in the order copied
    requeued: int  # running jobs put back in the queue


def tables_to_copy(
    sqlite_tables: Mapping[str, Sequence[str]], postgres_tables: Mapping[str, Sequence[str]]
) -> list[tuple[str, tuple[str, ...]]]:
    """Given each schema's tables and their columns, return the tables (sorted) with the columns to copy.

    Raise MigrateError naming what one side has and the other lacks.
    """
    postgres = {table: columns for table, columns in postgres_tables.items() if table not in POSTGRES_ONLY_TABLES}
    problems = []
    if only_sqlite := sorted(set(sqlite_tables) - set(postgres)):
        problems.append(f"tables only in SQLite: {', '.join(only_sqlite)}")
    if only_postgres := sorted(set(postgres) - set(sqlite_tables)):
        problems.append(f"tables only in PostgreSQL: {', '.join(only_postgres)}")
    for table in sorted(set(sqlite_tables) & set(postgres)):
        if missing := [column for column in sqlite_tables[table] if column not in postgres[table]]:
            problems.append(f"columns of {table} only in SQLite: {', '.join(missing)}")
        if extra := [column for column in postgres[table] if column not in sqlite_tables[table]]:
            problems.append(f"columns of {table} only in PostgreSQL: {', '.join(extra)}")
    if problems:
        raise MigrateError(
            f"the SQLite and PostgreSQL schemas of this hb2r differ ({'; '.join(problems)}); nothing was copied"
        )
    return [(table, tuple(sqlite_tables[table])) for table in sorted(sqlite_tables)]


def version_problem(*, location: str, version: int) -> str | None:
    """Given the target's hb2r schema version (0: none), return why it cannot take the copy, or None."""
    if version in (0, SCHEMA_VERSION):
        return None
    return (
        f"{location} has hb2r store schema version {version}, not this hb2r's ({SCHEMA_VERSION}): "
        "store migrate copies only into an empty database; give it a new one"
    )


def rows_problem(*, location: str, rows: Mapping[str, int]) -> str | None:
    """Given the row count of each of the target's tables, return why it cannot take the copy, or None."""
    held = [f"{table}: {_rows(count)}" for table, count in rows.items() if count]
    if not held:
        return None
    return (
        f"{location} already holds hb2r data ({', '.join(held)}): store migrate copies only into an "
        "empty database; give it a new one, or empty this one"
    )


def count_problems(expected: Mapping[str, int], actual: Mapping[str, int]) -> list[str]:
    """Given the rows read from SQLite and the rows PostgreSQL holds, per table, return each difference."""
    return [
        f"{table}: {_rows(count)} in SQLite, {actual.get(table, 0)} in PostgreSQL"
        for table, count in expected.items()
        if actual.get(table, 0) != count
    ]


def migrate_state(state_dir: Path, *, url: str, password_file: Path | None, now: datetime) -> Copied:
    """Copy the SQLite state in state_dir into the empty PostgreSQL database at url; return what was copied.

    Raise MigrateError if url is not a postgresql:// URL, there is no state to copy, the target
    cannot be reached or is not empty, or the copy fails (the target is then as it was);
    LockHeld (naming the holder) if an agent runs on state_dir; StateError if the SQLite state
    cannot be read or is newer than this hb2r.
    """
    location = redact_url(url)
    if urlsplit(url).scheme not in ("postgresql", "postgres"):
        raise MigrateError(
            f"--to must be a postgresql:// URL, got {location!r}: store migrate copies the SQLite state into PostgreSQL"
        )
    source = database_path(state_dir)
    try:
        exists = source.is_file()
    except OSError as error:
        raise MigrateError(f"cannot read state database {source}: {error.strerror}") from None
    if not exists:
        raise MigrateError(f"there is no state database at {source}: nothing to migrate")
    with agent_lock(state_dir, purpose=MIGRATE_PURPOSE):
        _refuse_unmerged_wal(source)
        sqlite = open_readonly(state_dir)
        if sqlite is None:  # removed since it was looked for
            raise MigrateError(f"there is no state database at {source}: nothing to migrate")
        try:
            try:
                target = connect_postgres(url, password_file=password_file)
            except StoreError as error:
                raise MigrateError(str(error)) from None
            try:
                rows, requeued = copy_state(sqlite, target, now=now)
            finally:
                target.close()
        finally:
            sqlite.close()
    return Copied(source=source, source_schema=_file_version(source), target=location, rows=rows, requeued=requeued)


def copy_state(source: SqliteDatabase, target: PostgresDatabase, *, now: datetime) -> tuple[dict[str, int], int]:
    """Copy every table of source into the empty target in one transaction; return rows per table and jobs requeued.

    Raise MigrateError if the target is not empty or the schemas differ, or a step fails; the
    target's transaction is then rolled back.
    """
    try:
        with target.transaction():
            target.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))  # hosts starting wait for us
            problem = version_problem(location=target.location, version=schema_version(target))
            if problem:
                raise MigrateError(f"{problem}; nothing was changed")
            _prepare_target(target)
            tables = tables_to_copy(_sqlite_tables(source), _postgres_tables(target))
            target.execute(f"LOCK TABLE {', '.join(_quoted(table) for table, _ in tables)} IN EXCLUSIVE MODE")
            problem = rows_problem(location=target.location, rows={table: _count(target, table) for table, _ in tables})
            if problem:
                raise MigrateError(f"{problem}; nothing was changed")
            copied = _copy_rows(source, target, tables)
            _move_sequences_past(target, [table for table, _ in tables])
            requeued = jobs.requeue_running(target, now=now)
            problems = count_problems(copied, {table: _count(target, table) for table, _ in tables})
            if problems:
                raise MigrateError(f"the copy does not add up ({'; '.join(problems)}); nothing was kept")
    except StoreError as error:
        raise MigrateError(f"copying into {target.location} failed: {error}; nothing was written there") from None
    return copied, len(requeued)


def _prepare_target(target: PostgresDatabase) -> None:
    """Give a database without hb2r's schema the schema (in the caller's transaction); refuse a stranger's tables."""
    if schema_version(target) != 0:
        return
    existing = [
        str(row[0])
        for row in target.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY 1"
        ).fetchall()
    ]
    if existing:
        raise MigrateError(
            f"{target.location} has tables but no hb2r schema ({', '.join(existing)}): "
            "give store migrate an empty database; nothing was changed"
        )
    migrate(target)


def _sqlite_tables(source: Database) -> dict[str, list[str]]:
    names = [
        str(row[0])
        for row in source.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite!_%' ESCAPE '!'"
        ).fetchall()
    ]
    return {
        name: [
            str(row[0])
            for row in source.execute("SELECT name FROM pragma_table_info(?) ORDER BY cid", (name,)).fetchall()
        ]
        for name in names
    }


def _postgres_tables(target: Database) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    for table, column in target.execute(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'"
        " ORDER BY c.table_name, c.ordinal_position"
    ).fetchall():
        tables.setdefault(str(table), []).append(str(column))
    return tables


def _copy_rows(
    source: SqliteDatabase, target: PostgresDatabase, tables: list[tuple[str, tuple[str, ...]]]
) -> dict[str, int]:
    """Read every table in one SQLite read transaction and insert its rows, triggers off; return rows per table."""
    copied: dict[str, int] = {}
    source.execute("BEGIN")  # deferred: a read transaction, one commit's state for every table
    try:
        for table, columns in tables:
            names = ", ".join(_quoted(column) for column in columns)
            # Names from both catalogs, checked equal by tables_to_copy, and quoted.
            rows = source.execute(f"SELECT {names} FROM {_quoted(table)}").fetchall()  # noqa: S608
            target.execute(f"ALTER TABLE {_quoted(table)} DISABLE TRIGGER USER")
            try:
                target.executemany(
                    f"INSERT INTO {_quoted(table)} ({names}) VALUES ({', '.join('?' for _ in columns)})",  # noqa: S608
                    rows,
                )
            except StoreError as error:
                raise MigrateError(
                    f"PostgreSQL refused a row of table {table}: {error}; nothing was written to {target.location}"
                ) from None
            target.execute(f"ALTER TABLE {_quoted(table)} ENABLE TRIGGER USER")
            copied[table] = len(rows)
    finally:
        source.execute("COMMIT")
    return copied


def _move_sequences_past(target: PostgresDatabase, tables: list[str]) -> None:
    """Set every identity sequence past its column's highest value, and the counter sequences past theirs."""
    fed: list[tuple[str, str, str]] = []
    for table in tables:
        for (column,) in target.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? AND is_identity = 'YES'",
            (table,),
        ).fetchall():
            owned = target.execute("SELECT pg_get_serial_sequence(?, ?)", (_quoted(table), str(column))).fetchone()
            if owned is not None and owned[0] is not None:
                fed.append((str(owned[0]), table, str(column)))
    free = [
        str(row[0])
        for row in target.execute(
            "SELECT c.relname FROM pg_class c WHERE c.relkind = 'S' AND c.relnamespace = current_schema()::regnamespace"
            " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid"
            " AND d.deptype IN ('a', 'i'))"
        ).fetchall()
    ]
    unknown = sorted(set(free) - set(COUNTER_SEQUENCES))
    if unknown:
        raise MigrateError(
            f"PostgreSQL has sequences this hb2r cannot place past the copied rows ({', '.join(unknown)}); "
            "nothing was kept"
        )
    fed.extend((_quoted(sequence), *COUNTER_SEQUENCES[sequence]) for sequence in free)
    for sequence, table, column in fed:
        target.execute(
            f"SELECT setval(?::regclass, COALESCE(max({_quoted(column)}), 0) + 1, false) FROM {_quoted(table)}",  # noqa: S608
            (sequence,),
        )


def _refuse_unmerged_wal(database: Path) -> None:
    """Raise MigrateError if the database's WAL cannot be read with it (no -shm beside it): rows would be missed."""
    if Path(f"{database}-wal").exists() and not Path(f"{database}-shm").exists():
        raise MigrateError(
            f"{database}-wal holds changes not merged into {database}, and without its -shm file they cannot "
            "be read without writing: start the agent and stop it again (that merges them), then migrate"
        )


def _file_version(database: Path) -> int:
    """Return the SQLite file's own schema version (read from its header: user_version at byte 60)."""
    with database.open("rb") as file:
        file.seek(60)
        return int.from_bytes(file.read(4), "big")


def _count(database: Database, table: str) -> int:
    row = database.execute(f"SELECT count(*) FROM {_quoted(table)}").fetchone()  # noqa: S608
    return int(row[0]) if row is not None else 0


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rows(count: int) -> str:
    return f"{count} row{'' if count == 1 else 's'}"


__all__ = ["Copied", "MigrateError", "StateError", "migrate_state"]
