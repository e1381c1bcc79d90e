"""Could this host start `hb2r run` on a PostgreSQL store now? Asked by the deploy before it touches the agent.

`python -m agent.store.run_check URL HOST` (the password in PGPASSWORD, or a file with
`--password-file`): exit 0 if the agent on HOST could run on the store, else print one line
saying why and exit 1. Run by playbooks/roles/hb2r as the agent's user, with the release being
deployed, before the agent in use is stopped: a wrong password, a pg_hba.conf that does not let
the host in, an unreachable database, or a store whose schema is newer than the release being
deployed (another host runs a newer hb2r: version skew) each stop the deploy there, with the
agent in use untouched. Other hosts' agents on the store are no obstacle: several share one
(jobs are claimed under leases, one host at a time plans).

It writes nothing and migrates nothing; on an empty database there is nothing to compare.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.store.postgres import connect_postgres
from agent.store.postgres_schema import SCHEMA_VERSION, schema_version
from agent.store.sql import StoreError


def check_can_run(url: str, *, host: str, password_file: Path | None = None) -> None:
    """Return if the agent of host could run on the store at url; else raise StoreError saying why."""
    database = connect_postgres(url, password_file=password_file)
    try:
        version = schema_version(database)
    finally:
        database.close()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"store schema {version} is newer than this hb2r knows ({SCHEMA_VERSION}): another host runs a newer "
            f"hb2r; deploy that release to {host} too"
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
