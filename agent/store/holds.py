"""Libraries an operator paused through the API: kept across restarts until resumed."""

from __future__ import annotations

import sqlite3
from typing import NamedTuple


class Hold(NamedTuple):
    reason: str
    since: str  # ISO-8601 UTC


def load_holds(connection: sqlite3.Connection) -> dict[str, Hold]:
    rows = connection.execute("SELECT library, reason, since FROM library_holds ORDER BY library")
    return {library: Hold(reason, since) for library, reason, since in rows}


def hold(connection: sqlite3.Connection, library: str, *, reason: str, since: str) -> Hold:
    """Pause library (a second pause keeps the first one's time); return the hold in force."""
    connection.execute(
        "INSERT INTO library_holds (library, reason, since) VALUES (?, ?, ?) ON CONFLICT (library) DO NOTHING",
        (library, reason, since),
    )
    row = connection.execute("SELECT reason, since FROM library_holds WHERE library = ?", (library,)).fetchone()
    return Hold(row[0], row[1])


def release(connection: sqlite3.Connection, library: str) -> bool:
    """Resume library; return whether it was paused."""
    return connection.execute("DELETE FROM library_holds WHERE library = ?", (library,)).rowcount > 0
