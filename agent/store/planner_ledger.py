"""Read everything the planner needs from the state database in one go."""

from __future__ import annotations

from agent.domain import Ledger
from agent.store.ledger import load_entries
from agent.store.scans import load_file_counts, load_seen
from agent.store.sql import Database
from agent.store.users import load_users


def load_ledger(database: Database | None) -> Ledger:
    """Given a database (or None: no database yet), return the remembered state."""
    if database is None:
        return Ledger()
    return Ledger(
        entries=load_entries(database),
        seen=load_seen(database),
        file_counts=load_file_counts(database),
        users=load_users(database),
    )
