"""Users as stored; the config's `users:` list is applied to this table by the engine."""

from __future__ import annotations

import sqlite3

from agent.domain import UserChange, UserChangeKind, UserRecord


def load_users(connection: sqlite3.Connection) -> tuple[UserRecord, ...]:
    rows = connection.execute("SELECT name, role, password_hash FROM users ORDER BY name")
    return tuple(UserRecord(*row) for row in rows)


def apply(connection: sqlite3.Connection, change: UserChange, *, now: str) -> None:
    """Apply one planned user change."""
    if change.change is UserChangeKind.REMOVE:
        connection.execute("DELETE FROM users WHERE name = ?", (change.name,))
        return
    connection.execute(
        """
        INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (name) DO UPDATE SET
            role = excluded.role, password_hash = excluded.password_hash, updated_at = excluded.updated_at
        """,
        (change.name, change.role, change.password_hash, now, now),
    )
