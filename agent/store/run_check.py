"""Could this host start `hb2r run` on a PostgreSQL store now? Asked by the deploy before it touches the agent.

`python -m agent.store.run_check URL HOST` (the password in PGPASSWORD, or a file with
`--password-file`): exit 0 if the agent on HOST could run on the store, else print one line
saying why and exit 1. Run by playbooks/roles/hb2r as the agent's user, with the release being
deployed, before the agent in use is stopped: a wrong password, a pg_hba.conf that does not let
the host in, an unreachable database, or (while it is one `hb2r run` per database, see
`agent.store.postgres_store`) another host's agent holding the store, each stop the deploy
there, with the agent in use untouched.

It writes nothing and migrates nothing: the run lock is tried and, when taken, given back at
once; on an empty database there is nobody to hold it. The host's own agent holding the lock
(a redeploy) is no obstacle: the deploy restarts that agent.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.store.postgres import PostgresDatabase, connect_postgres
from agent.store.postgres_store import RUN_HOLDER, RUN_LOCK
from agent.store.sql import StoreError


def run_lock_holder(database: PostgresDatabase) -> str | None:
    """Return who holds the store's run lock ("host (pid N)", or "another agent"), or None if nobody does."""
    row = database.execute("SELECT pg_try_advisory_lock(?)", (RUN_LOCK,)).fetchone()
    if row is not None and row[0]:
        database.execute("SELECT pg_advisory_unlock(?)", (RUN_LOCK,))
        return None
    holder = database.execute("SELECT value FROM agent_status WHERE key = ?", (RUN_HOLDER,)).fetchone()
    return str(holder[0]) if holder is not None else "another agent"


def check_can_run(url: str, *, host: str, password_file: Path | None = None) -> None:
    """Return if the agent of host could run on the store at url; else raise StoreError saying why."""
    database = connect_postgres(url, password_file=password_file)
    try:
        holder = run_lock_holder(database)
    finally:
        database.close()
    if holder is not None and not holder.startswith(f"{host} (pid "):
        raise StoreError(
            f"the agent on host {holder} is running on this store; one `hb2r run` per PostgreSQL store until "
            "several hosts can share one (leases): stop that agent, or give this host its own database"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent.store.run_check", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="postgresql://user@host[:port]/database")
    parser.add_argument("host", help="this host's name (host.name)")
    parser.add_argument("--password-file", type=Path, help="default: PGPASSWORD, the URL or ~/.pgpass")
    arguments = parser.parse_args(argv)
    try:
        check_can_run(arguments.url, host=arguments.host, password_file=arguments.password_file)
    except StoreError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
