"""Read everything the planner needs from the state database in one go."""

from __future__ import annotations

import sqlite3

from agent.domain import Ledger
from agent.store.ledger import load_entries
from agent.store.scans import load_file_counts, load_seen
from agent.store.users import load_users


def load_ledger(connection: sqlite3.Connection | None) -> Ledger:
    """Given a connection (or None: no database yet), return the remembered state."""
    if connection is None:
        return Ledger()
    return Ledger(
        entries=load_entries(connection),
        seen=load_seen(connection),
        file_counts=load_file_counts(connection),
        users=load_users(connection),
    )
