"""The scan memory: what each pass saw, so that stability and the vanish breaker survive restarts."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from agent.domain import SeenFile, SourceFile
from agent.store.db import transaction


def load_seen(connection: sqlite3.Connection) -> dict[tuple[str, str], SeenFile]:
    rows = connection.execute("SELECT library, rel_path, size, mtime_ns, fingerprint, changed_at_ns FROM seen_files")
    return {
        (library, rel_path): SeenFile(size, mtime_ns, fingerprint, changed)
        for library, rel_path, size, mtime_ns, fingerprint, changed in rows
    }


def load_file_counts(connection: sqlite3.Connection) -> dict[str, int]:
    return dict(connection.execute("SELECT library, file_count FROM library_scans"))


def record_scan(
    connection: sqlite3.Connection,
    *,
    library: str,
    files: Iterable[SourceFile],
    previous: dict[tuple[str, str], SeenFile],
    now_ns: int,
    scanned_at: str,
) -> None:
    """Record one good scan of a library in a single transaction.

    A file whose size or mtime differs from the previous scan gets `changed_at_ns = now_ns`;
    files no longer present are forgotten. Fingerprints are kept while size and mtime hold.
    """
    files = list(files)
    rows = []
    for source in files:
        before = previous.get((library, source.rel_path))
        changed = before is not None and (before.size, before.mtime_ns) != (source.size, source.mtime_ns)
        changed_at = now_ns if changed else (before.changed_at_ns if before else None)
        kept = before.fingerprint if before is not None and not changed else None
        rows.append((library, source.rel_path, source.size, source.mtime_ns, source.fingerprint or kept, changed_at))
    with transaction(connection):
        connection.execute("CREATE TEMP TABLE IF NOT EXISTS present (rel_path TEXT PRIMARY KEY)")
        connection.execute("DELETE FROM temp.present")
        connection.executemany("INSERT INTO temp.present VALUES (?)", ((row[1],) for row in rows))
        connection.execute(
            "DELETE FROM seen_files WHERE library = ? AND rel_path NOT IN (SELECT rel_path FROM temp.present)",
            (library,),
        )
        connection.executemany(
            """
            INSERT INTO seen_files (library, rel_path, size, mtime_ns, fingerprint, changed_at_ns)
            VALUES (?, ?, ?, ?, ?, ?)
            ON CONFLICT (library, rel_path) DO UPDATE SET
                size = excluded.size, mtime_ns = excluded.mtime_ns,
                fingerprint = excluded.fingerprint, changed_at_ns = excluded.changed_at_ns
            """,
            rows,
        )
        connection.execute(
            """
            INSERT INTO library_scans (library, file_count, scanned_at) VALUES (?, ?, ?)
            ON CONFLICT (library) DO UPDATE SET file_count = excluded.file_count, scanned_at = excluded.scanned_at
            """,
            (library, len(files), scanned_at),
        )
