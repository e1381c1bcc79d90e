"""The body of `hb2r store migrate`, apart from the parser in `agent.cli`: choose the target, print the outcome.

The copy itself is `agent.store.copy_state`. Here: the target is `--to URL`, or, without it,
the config's `store.url` when that is a postgresql:// URL (an operator who set store.url first
and then migrates). The password comes from `--password-file`, else from `store.password_file`
when the target is the config's own URL, else from the URL, `PGPASSWORD` or `~/.pgpass`
(libpq's usual places). A URL with a password in it is visible to other users in `ps`: the
password file or `PGPASSWORD` keep it out. No message shows the password.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from agent.cli_output import EXIT_ERROR, EXIT_OK, fail
from agent.config.models import Config
from agent.store.db import SCHEMA_VERSION, StateError
from agent.store.lock import LockHeld
from agent.wording import counted

if TYPE_CHECKING:
    from agent.store.copy_state import Copied


def migrate_store(arguments: argparse.Namespace, *, config: Config, config_path: Path) -> int:
    """Given `hb2r store migrate` arguments and the loaded config, copy the state and print it; return the exit code."""
    url = arguments.to or (config.store.url if config.store.is_postgres else None)
    if url is None:
        print(
            f"error: give --to postgresql://user@host[:port]/database: store.url in {config_path} is "
            f"{config.store.url!r}, not a PostgreSQL store to copy into",
            file=sys.stderr,
        )
        return EXIT_ERROR
    try:
        from agent.store.copy_state import MigrateError, migrate_state
    except ModuleNotFoundError as error:  # psycopg comes with the hb2r[postgres] extra only
        if (error.name or "").split(".")[0] != "psycopg":
            raise
        print(
            "error: hb2r store migrate needs the PostgreSQL driver psycopg 3: install hb2r with its postgres "
            "extra (pip install 'hb2r[postgres]'); nothing was copied",
            file=sys.stderr,
        )
        return EXIT_ERROR
    password_file = arguments.password_file or (config.store.password_file if url == config.store.url else None)
    try:
        copied = migrate_state(config.paths.state_dir, url=url, password_file=password_file, now=datetime.now(UTC))
    except LockHeld as error:
        return fail(f"{error}; stop it first (e.g. `systemctl stop hb2r`); nothing was copied")
    except (MigrateError, StateError) as error:
        return fail(error)
    lines = describe_migration(
        copied, next_url=without_password(url), config_path=config_path, already_set=url == config.store.url
    )
    print("\n".join(lines))
    return EXIT_OK


def describe_migration(copied: Copied, *, next_url: str, config_path: Path, already_set: bool) -> list[str]:
    """Given a finished copy, return the lines `hb2r store migrate` prints: rows per table and the next step."""
    migrated = "" if copied.source_schema >= SCHEMA_VERSION else f" (schema {copied.source_schema}, migrated in memory)"
    lines = [f"Copied {copied.source}{migrated} into {copied.target} in one transaction:"]
    for table, count in copied.rows.items():
        note = ""
        if table == "jobs" and copied.requeued:
            note = f" ({counted(copied.requeued, 'running job')} put back in the queue)"
        lines.append(f"  {table}: {counted(count, 'row')}{note}")
    lines.append(
        f"{copied.source} is left as it was: to go back, set store.url to sqlite (what ran since is not in it)."
    )
    if already_set:
        lines.append(f"Next: store.url in {config_path} already names {next_url}: start the agent.")
    else:
        lines.append(
            f"Next: set store.url to {next_url} in {config_path} (its password in store.password_file) "
            "and start the agent."
        )
    return lines


def without_password(url: str) -> str:
    """Given a postgresql:// URL, return it without its password (the user, host, port and database stay)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, _ = parts.netloc.rpartition("@")[0].partition(":")
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}@{host}" if user else host).geturl()
