"""What planning one batch of folders reads from the store, each by an index, never a table whole.

Why: a library is planned a batch of folders at a time (`agent.batch_plan`), so that memory
follows the batch, not the library; the facts a batch needs are its folders' ledger and seen
rows, whether the outputs it names exist, the rows of unconfigured libraries holding those
outputs, and a few facts about the vanished rows (ledger rows with no seen row: the pass
records what it saw before it plans; see `agent.incremental_scan`).

Lists of keys are sent in chunks (CHUNK), well under SQLite's limit of parameters. Where order
matters (the first vanished row by path), PostgreSQL is asked for code point order (`COLLATE
"C"`), which is Python's and SQLite's.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from agent.domain import LedgerEntry, SeenFile
from agent.store.sql import Database

CHUNK = 500
PAGE = 1000

_ENTRY = "l.library, l.rel_path, l.fingerprint, l.size, l.mtime_ns, l.preset_hash, l.output_path"
_VANISHED = "NOT EXISTS (SELECT 1 FROM seen_files s WHERE s.library = l.library AND s.rel_path = l.rel_path)"


def ledger_in_folders(database: Database, library: str, folders: Sequence[str]) -> dict[str, LedgerEntry]:
    """Return the ledger rows of library whose source is (or was) in these folders, by path."""
    found: dict[str, LedgerEntry] = {}
    for chunk in _chunks(folders):
        query = f"SELECT {_ENTRY} FROM ledger l WHERE l.library = ? AND l.folder IN ({_marks(chunk)})"  # noqa: S608
        for row in database.execute(query, (library, *chunk)).fetchall():
            found[row[1]] = LedgerEntry(*row)
    return found


def seen_in_folders(database: Database, library: str, folders: Sequence[str]) -> dict[str, SeenFile]:
    """Return what the scan memory holds of the files in these folders of library, by path."""
    found: dict[str, SeenFile] = {}
    for chunk in _chunks(folders):
        query = (
            "SELECT rel_path, size, mtime_ns, fingerprint, changed_at_ns, ctime_ns FROM seen_files"  # noqa: S608
            f" WHERE library = ? AND folder IN ({_marks(chunk)})"
        )
        for rel_path, size, mtime_ns, fingerprint, changed, ctime in database.execute(
            query, (library, *chunk)
        ).fetchall():
            found[rel_path] = SeenFile(size, mtime_ns, fingerprint, changed, ctime)
    return found


def outputs_present(database: Database, paths: Collection[str]) -> set[str]:
    """Return which of these archive-relative paths the remembered archive holds."""
    found: set[str] = set()
    for chunk in _chunks(sorted(paths)):
        query = f"SELECT rel_path FROM archive_files WHERE rel_path IN ({_marks(chunk)})"  # noqa: S608
        found.update(row[0] for row in database.execute(query, chunk).fetchall())
    return found


def rows_holding_outputs(
    database: Database, paths: Collection[str], *, other_than: Collection[str]
) -> dict[str, LedgerEntry]:
    """Return, by output path, the ledger rows holding these outputs under a library not in other_than."""
    found: dict[str, LedgerEntry] = {}
    for chunk in _chunks(sorted(paths)):
        query = f"SELECT {_ENTRY} FROM ledger l WHERE l.output_path IN ({_marks(chunk)})"  # noqa: S608
        for row in database.execute(query, chunk).fetchall():
            entry = LedgerEntry(*row)
            if entry.library not in other_than:
                found[entry.output_path] = entry
    return found


def vanished_sizes(database: Database, library: str, sizes: Collection[int]) -> set[int]:
    """Return which of these sizes a vanished row of library has (a new file of such a size may be a rename)."""
    found: set[int] = set()
    for chunk in _chunks(sorted(sizes)):
        query = (
            f"SELECT DISTINCT l.size FROM ledger l WHERE l.library = ? AND l.size IN ({_marks(chunk)})"  # noqa: S608
            f" AND {_VANISHED}"
        )
        found.update(int(row[0]) for row in database.execute(query, (library, *chunk)).fetchall())
    return found


def vanished_with_fingerprints(
    database: Database, library: str, fingerprints: Collection[str], *, hidden: tuple[str, ...] = ()
) -> dict[str, LedgerEntry]:
    """Return, for each of these fingerprints, the first vanished row of library (by path) that has it
    and whose output the remembered archive holds; rows under `hidden` prefixes have not vanished."""
    candidates: dict[str, list[LedgerEntry]] = {}
    for chunk in _chunks(sorted(fingerprints)):
        query = (
            f"SELECT {_ENTRY} FROM ledger l JOIN archive_files a ON a.rel_path = l.output_path"  # noqa: S608
            f" WHERE l.library = ? AND l.fingerprint IN ({_marks(chunk)}) AND {_VANISHED}"
        )
        for row in database.execute(query, (library, *chunk)).fetchall():
            entry = LedgerEntry(*row)
            if not (hidden and entry.rel_path.startswith(hidden)):
                candidates.setdefault(entry.fingerprint, []).append(entry)
    return {fingerprint: min(rows, key=_by_path) for fingerprint, rows in candidates.items()}


def vanished_rows(database: Database, library: str) -> Iterator[LedgerEntry]:
    """Yield the vanished rows of library in path order, a page at a time."""
    after = ""
    order = _order(database)
    while True:
        query = (
            f"SELECT {_ENTRY} FROM ledger l WHERE l.library = ? AND l.rel_path{order} > ? AND {_VANISHED}"  # noqa: S608
            f" ORDER BY l.rel_path{order} LIMIT {PAGE}"
        )
        rows = database.execute(query, (library, after)).fetchall()
        for row in rows:
            yield LedgerEntry(*row)
        if len(rows) < PAGE:
            return
        after = rows[-1][1]


def ledger_folders(database: Database, library: str) -> set[str]:
    """Return the folders library's ledger rows are in (`hb2r plan` looks for rows whose folder it did not walk)."""
    rows = database.execute("SELECT DISTINCT folder FROM ledger WHERE library = ?", (library,)).fetchall()
    return {row[0] for row in rows}


def ledger_with_sizes(database: Database, library: str, sizes: Collection[int]) -> list[LedgerEntry]:
    """Return the ledger rows of library whose source has one of these sizes (rename candidates)."""
    found: list[LedgerEntry] = []
    for chunk in _chunks(sorted(sizes)):
        query = f"SELECT {_ENTRY} FROM ledger l WHERE l.library = ? AND l.size IN ({_marks(chunk)})"  # noqa: S608
        found.extend(LedgerEntry(*row) for row in database.execute(query, (library, *chunk)).fetchall())
    return found


def ledger_count(database: Database, library: str) -> int:
    """Return how many ledger rows library has (the vanish breaker's baseline before any scan)."""
    row = database.execute("SELECT count(*) FROM ledger WHERE library = ?", (library,)).fetchone()
    return 0 if row is None else int(row[0])


def count_under(database: Database, library: str, prefixes: Sequence[str], *, remembered: bool) -> int:
    """Return how many files of library under these folder prefixes ("Locked/") the scan memory
    (`remembered`) or else the ledger holds."""
    table = "seen_files" if remembered else "ledger"
    order = _order(database)
    total = 0
    for prefix in prefixes:
        query = f"SELECT count(*) FROM {table} WHERE library = ? AND rel_path{order} >= ? AND rel_path{order} < ?"  # noqa: S608
        row = database.execute(query, (library, prefix, _past(prefix))).fetchone()
        total += 0 if row is None else int(row[0])
    return total


def outputs_recorded_in(database: Database, library: str, output_folder: str) -> int:
    """Return how many ledger rows of library have their output in this output folder."""
    order = _order(database)
    prefix = output_folder + "/"
    query = f"SELECT count(*) FROM ledger WHERE library = ? AND output_path{order} >= ? AND output_path{order} < ?"  # noqa: S608
    row = database.execute(query, (library, prefix, _past(prefix))).fetchone()
    return 0 if row is None else int(row[0])


def remembered_file_count(database: Database, library: str) -> int:
    """Return how many files the remembered folders of library hold."""
    row = database.execute(
        "SELECT coalesce(sum(file_count), 0) FROM scanned_folders WHERE library = ?", (library,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def recorded_output_folders(database: Database) -> set[str]:
    """Return the archive folders the ledger's outputs are in (an output path's first part)."""
    first = (
        "split_part(output_path, '/', 1)"
        if database.dialect == "postgres"
        else ("substr(output_path, 1, instr(output_path, '/') - 1)")
    )
    return {row[0] for row in database.execute(f"SELECT DISTINCT {first} FROM ledger").fetchall()}  # noqa: S608


def remember_fingerprints(database: Database, library: str, fingerprints: Mapping[str, tuple[int, int, str]]) -> None:
    """Remember fingerprints read after the walk was recorded (path -> size, mtime_ns, fingerprint),
    for the files whose seen row still has that size and mtime and no fingerprint."""
    database.executemany(
        "UPDATE seen_files SET fingerprint = ? WHERE library = ? AND rel_path = ? AND size = ? AND mtime_ns = ?"
        " AND fingerprint IS NULL",
        [
            (fingerprint, library, rel_path, size, mtime)
            for rel_path, (size, mtime, fingerprint) in fingerprints.items()
        ],
    )


def _chunks(keys: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(keys), CHUNK):
        yield keys[start : start + CHUNK]


def _marks(chunk: Sequence[Any]) -> str:
    return ", ".join("?" * len(chunk))


def _by_path(entry: LedgerEntry) -> str:
    return entry.rel_path


def _order(database: Database) -> str:
    """Code point order for comparisons of paths (PostgreSQL's default collation may differ)."""
    return ' COLLATE "C"' if database.dialect == "postgres" else ""


def _past(prefix: str) -> str:
    """Return the first string after every string that starts with prefix (which ends with '/')."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
