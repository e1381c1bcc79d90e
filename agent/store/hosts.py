"""The hosts that share a store, as each last reported itself: who they are, what they can do, when.

Why: with several hosts on one PostgreSQL database, an operator must see from any of them
which hosts are alive, which hb2r and HandBrakeCLI each runs (version skew between hosts is
a classic of distributed encoders) and which libraries each can read now. Each agent upserts
its own row every lease/3 (with its leadership renewal); nothing ever deletes one: a host
that stopped is the one whose `last_seen` grows old, and /health names it.

`last_seen` is ISO-8601 UTC text on the DATABASE's clock (as leases are), so hosts whose
clocks disagree still agree on who is late; `seen_seconds_ago` is measured on that clock too.
`libraries` is the JSON list of the libraries the host can read now (text in both dialects).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from agent import timestamps
from agent.store.leases import database_now
from agent.store.sql import Database


class HostReport(NamedTuple):
    """What an agent says about itself each time it reports."""

    name: str
    version: str
    handbrake_version: str | None
    libraries: tuple[str, ...]  # the libraries it can read now
    running_jobs: int


class HostRow(NamedTuple):
    """A host as last reported, and how long ago on the database's clock."""

    name: str
    version: str
    handbrake_version: str | None
    libraries: tuple[str, ...]
    running_jobs: int
    last_seen: str
    seen_seconds_ago: float


def report(database: Database, host: HostReport) -> str:
    """Insert or update host's row, stamped with the database's time; return that stamp."""
    if not host.name:
        raise ValueError("a host report needs the host's name")
    if host.running_jobs < 0:
        raise ValueError(f"running jobs must be 0 or more, got {host.running_jobs}")
    stamp = timestamps.stamp(database_now(database))
    database.execute(
        """
        INSERT INTO hosts (name, version, handbrake_version, libraries, running_jobs, last_seen)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (name) DO UPDATE SET
            version = excluded.version, handbrake_version = excluded.handbrake_version,
            libraries = excluded.libraries, running_jobs = excluded.running_jobs, last_seen = excluded.last_seen
        """,
        (
            host.name,
            host.version,
            host.handbrake_version,
            json.dumps(sorted(set(host.libraries))),
            host.running_jobs,
            stamp,
        ),
    )
    return stamp


def list_hosts(database: Database) -> list[HostRow]:
    """Return every host that ever reported, by name."""
    now = database_now(database)
    rows = database.execute(
        "SELECT name, version, handbrake_version, libraries, running_jobs, last_seen FROM hosts"
    ).fetchall()
    return sorted((_host(row, now=now) for row in rows), key=lambda host: host.name)


def _host(row: Sequence[object], *, now: datetime) -> HostRow:
    last_seen = str(row[5])
    try:
        libraries = tuple(str(name) for name in json.loads(str(row[3])))
    except (ValueError, TypeError):
        libraries = ()
    return HostRow(
        name=str(row[0]),
        version=str(row[1]),
        handbrake_version=None if row[2] is None else str(row[2]),
        libraries=libraries,
        running_jobs=int(str(row[4])),
        last_seen=last_seen,
        seen_seconds_ago=max(0.0, (now - datetime.fromisoformat(last_seen)).total_seconds()),
    )
