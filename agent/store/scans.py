"""The scan memory: what each pass saw, so that stability and the vanish breaker survive restarts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agent.domain import SeenFile, SourceFile
from agent.store.sql import Database


def load_seen(database: Database) -> dict[tuple[str, str], SeenFile]:
    rows = database.execute(
        "SELECT library, rel_path, size, mtime_ns, fingerprint, changed_at_ns FROM seen_files"
    ).fetchall()
    return {
        (library, rel_path): SeenFile(size, mtime_ns, fingerprint, changed)
        for library, rel_path, size, mtime_ns, fingerprint, changed in rows
    }


def load_file_counts(database: Database) -> dict[str, int]:
    return dict(database.execute("SELECT library, file_count FROM library_scans").fetchall())


def record_scan(
    database: Database,
    *,
    library: str,
    files: Iterable[SourceFile],
    previous: Mapping[tuple[str, str], SeenFile],
    now_ns: int,
    scanned_at: str,
) -> None:
    """Record one good scan of a library in a single transaction; `previous` is what the
    database holds now (`load_seen`).

    A file whose size or mtime differs from the previous scan gets `changed_at_ns = now_ns`;
    files no longer present are forgotten. Fingerprints are kept while size and mtime hold.
    Only rows that differ are written: an idle library of 10,000 files costs no writes.
    """
    files = list(files)
    changed_rows = []
    present = set()
    for source in files:
        present.add(source.rel_path)
        before = previous.get((library, source.rel_path))
        changed = before is not None and (before.size, before.mtime_ns) != (source.size, source.mtime_ns)
        changed_at = now_ns if changed else (before.changed_at_ns if before else None)
        kept = before.fingerprint if before is not None and not changed else None
        row = SeenFile(source.size, source.mtime_ns, source.fingerprint or kept, changed_at)
        if row != before:
            changed_rows.append((library, source.rel_path, row.size, row.mtime_ns, row.fingerprint, row.changed_at_ns))
    gone = [(library, rel_path) for (name, rel_path) in previous if name == library and rel_path not in present]
    with database.transaction():
        database.executemany("DELETE FROM seen_files WHERE library = ? AND rel_path = ?", gone)
        database.executemany(
            """
            INSERT INTO seen_files (library, rel_path, size, mtime_ns, fingerprint, changed_at_ns)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (library, rel_path) DO UPDATE SET
                size = excluded.size, mtime_ns = excluded.mtime_ns,
                fingerprint = excluded.fingerprint, changed_at_ns = excluded.changed_at_ns
            """,
            changed_rows,
        )
        database.execute(
            """
            INSERT INTO library_scans (library, file_count, scanned_at) VALUES (?, ?, ?)
            ON CONFLICT (library) DO UPDATE SET file_count = excluded.file_count, scanned_at = excluded.scanned_at
            """,
            (library, len(files), scanned_at),
        )
