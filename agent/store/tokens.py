"""Tokens ended by a logout: kept until they would have expired anyway, then forgotten."""

from __future__ import annotations

from agent.store.sql import Database


def revoke(database: Database, token_id: str, *, expires_at: str, now: str) -> None:
    """Record token_id as ended (a second logout changes nothing); forget tokens expired before now."""
    with database.transaction():
        database.execute("DELETE FROM revoked_tokens WHERE expires_at < ?", (now,))
        database.execute(
            "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO NOTHING",
            (token_id, expires_at),
        )


def is_revoked(database: Database, token_id: str) -> bool:
    return database.execute("SELECT 1 FROM revoked_tokens WHERE jti = ?", (token_id,)).fetchone() is not None
