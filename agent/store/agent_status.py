"""What the running agent tells other processes (`hb2r jobs`, the API) about itself."""

from __future__ import annotations

import json
from datetime import datetime

from agent.store.sql import Database
from agent.timestamps import stamp

GATE_KEY = "gate"


def set_gate(database: Database, *, reasons: tuple[str, ...], now: datetime) -> None:
    """Record why no job may start now (empty: jobs may start)."""
    database.execute(
        """
        INSERT INTO agent_status (key, value, updated_at) VALUES (?, ?, ?)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
        """,
        (GATE_KEY, json.dumps(list(reasons)), stamp(now)),
    )


def gate_reasons(database: Database) -> tuple[tuple[str, ...], str | None]:
    """Return the reasons jobs are held back (empty if none) and when that was recorded."""
    row = database.execute("SELECT value, updated_at FROM agent_status WHERE key = ?", (GATE_KEY,)).fetchone()
    if row is None:
        return (), None
    return tuple(json.loads(row[0])), row[1]
