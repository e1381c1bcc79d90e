"""The ledger: which source content was encoded with which preset, and where the output is."""

from __future__ import annotations

import sqlite3

from agent.domain import LedgerEntry


def load_entries(connection: sqlite3.Connection) -> tuple[LedgerEntry, ...]:
    rows = connection.execute(
        "SELECT library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path FROM ledger"
    )
    return tuple(LedgerEntry(*row) for row in rows)


def record(connection: sqlite3.Connection, entry: LedgerEntry, *, encoded_at: str) -> None:
    """Record that entry's source is encoded, replacing what was recorded for its path."""
    connection.execute(
        """
        INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path, encoded_at)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (library, rel_path) DO UPDATE SET
            fingerprint = excluded.fingerprint, size = excluded.size, mtime_ns = excluded.mtime_ns,
            preset_hash = excluded.preset_hash, output_path = excluded.output_path,
            encoded_at = excluded.encoded_at
        """,
        (
            entry.library,
            entry.rel_path,
            entry.fingerprint,
            entry.size,
            entry.mtime_ns,
            entry.preset_hash,
            entry.output_path,
            encoded_at,
        ),
    )


def forget(connection: sqlite3.Connection, *, library: str, rel_path: str) -> None:
    connection.execute("DELETE FROM ledger WHERE library = ? AND rel_path = ?", (library, rel_path))


def forget_output(connection: sqlite3.Connection, output_path: str) -> None:
    """Forget whichever entry holds this output (its source vanished and a new one takes it over)."""
    connection.execute("DELETE FROM ledger WHERE output_path = ?", (output_path,))


def holds_output(connection: sqlite3.Connection, output_path: str) -> bool:
    """Return whether some entry records this output (hb2r made it)."""
    return connection.execute("SELECT 1 FROM ledger WHERE output_path = ?", (output_path,)).fetchone() is not None
