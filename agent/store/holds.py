"""Libraries an operator paused through the API: kept across restarts until resumed."""

from __future__ import annotations

from typing import NamedTuple

from agent.store.sql import Database, StoreError


class Hold(NamedTuple):
    reason: str
    since: str  # ISO-8601 UTC


def load_holds(database: Database) -> dict[str, Hold]:
    """Return the paused libraries by name, in code point order on every database (see users.load_users)."""
    rows = sorted(database.execute("SELECT library, reason, since FROM library_holds").fetchall())
    return {library: Hold(reason, since) for library, reason, since in rows}


def hold(database: Database, library: str, *, reason: str, since: str) -> Hold:
    """Pause library (a second pause keeps the first one's time); return the hold in force."""
    database.execute(
        "INSERT INTO library_holds (library, reason, since) VALUES (?, ?, ?) ON CONFLICT (library) DO NOTHING",
        (library, reason, since),
    )
    row = database.execute("SELECT reason, since FROM library_holds WHERE library = ?", (library,)).fetchone()
    if row is None:  # released by another writer between the two statements
        raise StoreError(f"the hold on library {library!r} was released while it was being made")
    return Hold(row[0], row[1])


def release(database: Database, library: str) -> bool:
    """Resume library; return whether it was paused."""
    return database.execute("DELETE FROM library_holds WHERE library = ?", (library,)).rowcount > 0
