"""A PostgreSQL store's backup and restore: `pg_dump -Fc` and `pg_restore`, Debian's postgresql-client.

Why PostgreSQL's own tools and not a copy through the store: `pg_dump` reads the whole database
in one snapshot (a consistent copy while agents write), and its custom format is what every
PostgreSQL operator already knows how to read, list and restore by hand.

The password never appears in an argv (other users see those in `ps`): the tools get the
connection as a libpq conninfo without it, and the password (from `store.password_file`, else
the URL) in PGPASSWORD in the child's environment only; with neither, libpq's own PGPASSWORD or
~/.pgpass apply as for the agent. Their error output is reduced to one line, secrets removed.

Restore goes into an empty database only (no table in its schema): unlike SQLite's file, which
`hb2r restore` swaps whole and keeps the previous one beside it, a PostgreSQL database cannot be
kept aside by hb2r, so it refuses rather than mix two states or drop what is there. The
operator makes an empty one (`createdb -O hb2r hb2r`, or DROP the tables), then restores. It
runs in one transaction (`--single-transaction --exit-on-error`): all or nothing.

`dump_command`, `restore_command` and `list_command` are pure; `run_tool` runs them.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agent.config.store_url import hide_secrets, url_passwords
from agent.store.postgres import PostgresDatabase, connect_postgres, read_password_file
from agent.store.postgres_schema import schema_version
from agent.store.sql import StoreError

PG_DUMP = "pg_dump"
PG_RESTORE = "pg_restore"
DUMP_MAGIC = b"PGDMP"
TOOL_TIMEOUT_SECONDS = 3600.0
COUNTED = ("jobs", "ledger", "users")


@dataclass(frozen=True)
class ToolCall:
    """A command to run: its argv, and what to add to the child's environment."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)


def connection(url: str, *, password: str | None) -> tuple[str, dict[str, str]]:
    """Given the store URL and a password (None: the URL's, if any), return a conninfo without any
    password and the environment that carries it; raise StoreError if the URL cannot be read."""
    try:
        params = {key: str(value) for key, value in conninfo_to_dict(url).items() if value is not None}
    except Exception as error:  # psycopg's ProgrammingError: the URL is malformed
        raise StoreError(f"store URL cannot be read: {hide_secrets(str(error), *url_passwords(url))}") from None
    from_url = params.pop("password", None)
    secret = password if password is not None else from_url
    env = {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "hb2r backup"}
    if secret:
        env["PGPASSWORD"] = secret
    return make_conninfo(**params), env


def dump_command(url: str, *, password: str | None, target: Path) -> ToolCall:
    """Return the pg_dump call that writes the whole database at url into target (custom format)."""
    conninfo, env = connection(url, password=password)
    argv = (PG_DUMP, "--format=custom", "--no-owner", "--no-privileges", f"--file={target}", f"--dbname={conninfo}")
    return ToolCall(argv, env)


def restore_command(url: str, *, password: str | None, source: Path) -> ToolCall:
    """Return the pg_restore call that loads source into the database at url, in one transaction."""
    conninfo, env = connection(url, password=password)
    argv = (
        PG_RESTORE, "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
        f"--dbname={conninfo}", str(source),
    )  # fmt: skip
    return ToolCall(argv, env)


def list_command(source: Path) -> ToolCall:
    """Return the pg_restore call that lists an archive's contents (it fails on anything else)."""
    return ToolCall((PG_RESTORE, "--list", str(source)))


def run_tool(call: ToolCall, *, secrets: tuple[str, ...] = ()) -> str:
    """Run call; return its standard output. Raise StoreError with its error output as one line."""
    try:
        finished = subprocess.run(  # noqa: S603 (argv built above, no shell)
            call.argv,
            env={**os.environ, **call.env},
            capture_output=True,
            text=True,
            check=False,
            timeout=TOOL_TIMEOUT_SECONDS,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise StoreError(
            f"{call.argv[0]} is missing: install Debian's postgresql-client (apt-get install postgresql-client)"
        ) from None
    except subprocess.TimeoutExpired:
        raise StoreError(f"{call.argv[0]} did not finish within {TOOL_TIMEOUT_SECONDS:.0f} s") from None
    if finished.returncode != 0:
        lines = [line.strip() for line in finished.stderr.splitlines() if line.strip()]
        reason = "; ".join(lines[:3]) or f"exit status {finished.returncode}"
        raise StoreError(f"{call.argv[0]} failed: {hide_secrets(reason, *secrets, call.env.get('PGPASSWORD'))}")
    return finished.stdout


def password_for(url: str, password_file: Path | None) -> str | None:
    """Return the password the tools get: the file's if set (checked as for the agent), else the URL's."""
    if password_file is not None:
        return read_password_file(password_file)
    found = url_passwords(url)
    return found[0] if found else None


def dump(url: str, *, password_file: Path | None, target: Path) -> None:
    """Write the whole database at url into target (pg_dump custom format); raise StoreError if it fails."""
    password = password_for(url, password_file)
    run_tool(dump_command(url, password=password, target=target), secrets=url_passwords(url))


def check_archive(source: Path) -> None:
    """Raise StoreError unless source is a pg_dump custom-format archive pg_restore can read."""
    try:
        with source.open("rb") as file:
            magic = file.read(len(DUMP_MAGIC))
    except OSError as error:
        raise StoreError(f"cannot read {source}: {error.strerror}") from None
    if magic != DUMP_MAGIC:
        raise StoreError(f"{source} is not a pg_dump archive (hb2r backup of a PostgreSQL store)")
    run_tool(list_command(source))


def restore(url: str, *, password_file: Path | None, source: Path) -> dict[str, int]:
    """Load the archive source into the empty database at url; return its schema version and row counts.

    Raise StoreError if the database cannot be reached, is not empty, or pg_restore fails (then
    nothing of the archive stays: one transaction).
    """
    password = password_for(url, password_file)
    database = connect_postgres(url, password_file=password_file)
    try:
        tables = [row[0] for row in database.execute(_TABLES).fetchall()]
        if tables:
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(
                f"{database.location} is not empty ({len(tables)} tables: {shown}); restore into an empty "
                "database (e.g. `createdb -O hb2r NAME`, then point store.url at it), or drop its tables first"
            )
        run_tool(restore_command(url, password=password, source=source), secrets=url_passwords(url))
        return counts(database)
    finally:
        database.close()


def counts_at(url: str, *, password_file: Path | None) -> dict[str, int]:
    """Return the schema version and row counts of the store at url."""
    database = connect_postgres(url, password_file=password_file, read_only=True)
    try:
        return counts(database)
    finally:
        database.close()


def counts(database: PostgresDatabase) -> dict[str, int]:
    """Return the database's schema version and the row counts of its jobs, ledger and users."""
    found = {"schema_version": schema_version(database)}
    for table in COUNTED:  # names from the constant above
        row = database.execute(f"SELECT count(*) FROM {table}").fetchone()  # noqa: S608
        found[table] = int(row[0]) if row is not None else 0
    return found


_TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
