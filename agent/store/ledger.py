"""The ledger: which source content was encoded with which preset, and where the output is."""

from __future__ import annotations

from typing import NamedTuple

from agent.domain import LedgerEntry
from agent.store import tallies
from agent.store.sql import Database


def load_entries(database: Database) -> tuple[LedgerEntry, ...]:
    rows = database.execute(
        "SELECT library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path FROM ledger"
    ).fetchall()
    return tuple(LedgerEntry(*row) for row in rows)


def record(
    database: Database,
    entry: LedgerEntry,
    *,
    encoded_at: str,
    output_size: int | None = None,
    adopted: bool = False,
) -> None:
    """Record that entry's source is encoded, replacing what was recorded for its path.

    output_size (bytes; None if unknown) is what the status page counts as space saved.
    adopted: hb2r found the output there and did not make it, so it must never replace it.
    """
    database.execute(
        """
        INSERT INTO ledger (
            library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path, encoded_at, output_size,
            origin, folder
        )
        VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (library, rel_path) DO UPDATE SET
            fingerprint = excluded.fingerprint, size = excluded.size, mtime_ns = excluded.mtime_ns,
            preset_hash = excluded.preset_hash, output_path = excluded.output_path,
            encoded_at = excluded.encoded_at, output_size = excluded.output_size, origin = excluded.origin,
            larger_output = NULL
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
            output_size,
            "adopted" if adopted else "encoded",
            entry.rel_path.rpartition("/")[0],
        ),
    )


def output_size(database: Database, *, library: str, rel_path: str) -> int | None:
    row = database.execute(
        "SELECT output_size FROM ledger WHERE library = ? AND rel_path = ?", (library, rel_path)
    ).fetchone()
    return None if row is None else row[0]


def unsized_outputs(database: Database) -> list[str]:
    """Return the outputs whose size is not recorded (entries from before sizes were kept)."""
    return [row[0] for row in database.execute("SELECT output_path FROM ledger WHERE output_size IS NULL").fetchall()]


def set_output_size(database: Database, output_path: str, size: int) -> None:
    database.execute("UPDATE ledger SET output_size = ? WHERE output_path = ?", (size, output_path))


class LibraryBytes(NamedTuple):
    files: int
    input_bytes: int  # sources of the outputs whose size is known
    output_bytes: int


def bytes_by_library(database: Database) -> dict[str, LibraryBytes]:
    """Return, per library, how many outputs there are and the source and output bytes of the sized ones.

    Read from the tallies that triggers keep in step with the ledger (migration 11), not summed
    over every row.
    """
    source = tallies.LEDGER[database.dialect]
    rows = database.execute(
        f"SELECT library, sum(outputs), sum(input_bytes), sum(output_bytes) FROM {source}"  # noqa: S608 - constants
        " GROUP BY library HAVING sum(outputs) <> 0 ORDER BY library"
    ).fetchall()
    return {row[0]: LibraryBytes(int(row[1]), int(row[2]), int(row[3])) for row in rows}


def forget(database: Database, *, library: str, rel_path: str) -> None:
    database.execute("DELETE FROM ledger WHERE library = ? AND rel_path = ?", (library, rel_path))


def forget_output(database: Database, output_path: str) -> None:
    """Forget whichever entry holds this output (its source vanished and a new one takes it over)."""
    database.execute("DELETE FROM ledger WHERE output_path = ?", (output_path,))


def records(database: Database, *, library: str, rel_path: str, fingerprint: str, preset_hash: str) -> bool:
    """Return whether this content of this file is recorded as encoded with this preset."""
    row = database.execute(
        "SELECT 1 FROM ledger WHERE library = ? AND rel_path = ? AND fingerprint = ? AND preset_hash = ?",
        (library, rel_path, fingerprint, preset_hash),
    ).fetchone()
    return row is not None


def output_holder(database: Database, output_path: str) -> str | None:
    """Return the library of the entry that records this output, or None if none does."""
    row = database.execute("SELECT library FROM ledger WHERE output_path = ?", (output_path,)).fetchone()
    return None if row is None else str(row[0])


def carry_over(database: Database, *, output_path: str, library: str, rel_path: str, size: int, mtime_ns: int) -> None:
    """Move the entry of output_path to library (renamed in the config), with the source's size and
    mtime now; its fingerprint, preset, encoding time and output size stay."""
    database.execute(
        "UPDATE ledger SET library = ?, rel_path = ?, folder = ?, size = ?, mtime_ns = ? WHERE output_path = ?",
        (library, rel_path, rel_path.rpartition("/")[0], size, mtime_ns, output_path),
    )


def holds_output(database: Database, output_path: str) -> bool:
    """Return whether some entry records this output (hb2r made it)."""
    return database.execute("SELECT 1 FROM ledger WHERE output_path = ?", (output_path,)).fetchone() is not None


def made_output(database: Database, output_path: str) -> bool:
    """Return whether hb2r made this output (an entry records it, and not as adopted): only then may it replace it."""
    row = database.execute(
        "SELECT 1 FROM ledger WHERE output_path = ? AND origin = 'encoded'", (output_path,)
    ).fetchone()
    return row is not None


def adopted(database: Database, *, library: str, rel_path: str) -> bool:
    """Return whether the output recorded for this source is one hb2r adopted rather than made."""
    row = database.execute(
        "SELECT 1 FROM ledger WHERE library = ? AND rel_path = ? AND origin = 'adopted'", (library, rel_path)
    ).fetchone()
    return row is not None


def awaited_by_a_job(database: Database, *, library: str, rel_path: str, fingerprint: str, output_path: str) -> bool:
    """Return whether a queued or running job encodes this very content to this output: a file found
    there is then hb2r's own, published just before a crash kept the job from being marked done."""
    row = database.execute(
        """
        SELECT 1 FROM jobs WHERE library = ? AND rel_path = ? AND fingerprint = ? AND output_path = ?
          AND state IN ('queued', 'running')
        """,
        (library, rel_path, fingerprint, output_path),
    ).fetchone()
    return row is not None
