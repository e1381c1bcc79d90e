"""Users as stored; the config's `users:` list is applied to this table by the engine."""

from __future__ import annotations

from agent.domain import UserChange, UserChangeKind, UserRecord
from agent.store.sql import Database


def load_users(database: Database) -> tuple[UserRecord, ...]:
    """Return the stored users by name, in code point order on every database."""
    # Sorted here, not by ORDER BY: PostgreSQL sorts text by the database's collation (often a
    # language's: "alice" before "Bob"), SQLite by bytes ("Bob" first).
    rows = sorted(database.execute("SELECT name, role, password_hash, generated FROM users").fetchall())
    return tuple(UserRecord(name, role, hashed, bool(generated)) for name, role, hashed, generated in rows)


def find(database: Database, name: str) -> UserRecord | None:
    row = database.execute("SELECT name, role, password_hash, generated FROM users WHERE name = ?", (name,)).fetchone()
    return None if row is None else UserRecord(row[0], row[1], row[2], bool(row[3]))


def add_generated_admin(database: Database, *, name: str, password_hash: str, now: str) -> None:
    """Store the admin made because the config declares no users."""
    database.execute(
        """
        INSERT INTO users (name, role, password_hash, created_at, updated_at, generated)
        VALUES (?, 'admin', ?, ?, ?, 1)
        ON CONFLICT (name) DO UPDATE SET
            role = 'admin', password_hash = excluded.password_hash, updated_at = excluded.updated_at, generated = 1
        """,
        (name, password_hash, now, now),
    )


def apply(database: Database, change: UserChange, *, now: str) -> None:
    """Apply one planned user change."""
    if change.change is UserChangeKind.REMOVE:
        database.execute("DELETE FROM users WHERE name = ?", (change.name,))
        return
    database.execute(
        """
        INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
        ON CONFLICT (name) DO UPDATE SET
            role = excluded.role, password_hash = excluded.password_hash, updated_at = excluded.updated_at,
            generated = 0
        """,
        (change.name, change.role, change.password_hash, now, now),
    )
