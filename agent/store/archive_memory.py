"""The archive's part of the scan memory: the output folders a walk reached and the names in them
(`agent.archive_walk`), so that a pass lists only the archive folders that moved."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from agent.domain import FolderVisit, RememberedFolder
from agent.store.sql import Database

# Folders per query: well under SQLite's 32,766 parameters.
FOLDERS_PER_QUERY = 500


def load_archive_folders(database: Database) -> dict[str, RememberedFolder]:
    """Return the archive folders the last recorded walk reached (archive-relative, e.g. `TV/Show`)."""
    rows = database.execute(
        "SELECT rel_path, identity, mtime_ns, ctime_ns, problems, file_count, listed_at_ns FROM archive_folders"
    ).fetchall()
    return {
        rel_path: RememberedFolder(identity, mtime, ctime, False, bool(problems), count, listed_at, 0)
        for rel_path, identity, mtime, ctime, problems, count, listed_at in rows
    }


def load_archive_files(database: Database, folders: Sequence[str]) -> dict[str, list[str]]:
    """Return the remembered names (archive-relative paths) in these archive folders, by folder."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(folders), FOLDERS_PER_QUERY):
        chunk = folders[start : start + FOLDERS_PER_QUERY]
        placeholders = ", ".join("?" * len(chunk))
        query = f"SELECT folder, rel_path FROM archive_files WHERE folder IN ({placeholders})"  # noqa: S608
        for folder, rel_path in database.execute(query, chunk).fetchall():
            found.setdefault(folder, []).append(rel_path)
    return found


def record_archive(
    database: Database,
    *,
    folders: Iterable[FolderVisit],
    listed: Mapping[str, Sequence[str]],
    before_walk: Mapping[str, RememberedFolder] | None = None,
) -> dict[str, RememberedFolder]:
    """Remember the archive folders a walk reached and the names in those it listed (`listed`:
    folder -> archive-relative paths); forget the folders no longer reached and their names.
    Writes what changed only: the folders listed or lost, and the folder rows that differ.
    `before_walk`: the folders as `load_archive_folders` gave them before the walk, if the caller has them.
    Return the archive's folders as the store now remembers them (what `load_archive_folders` would read)."""
    before = load_archive_folders(database) if before_walk is None else before_walk
    rows: list[tuple[object, ...]] = []
    remembered_now: dict[str, RememberedFolder] = {}
    for visit in folders:
        names = listed.get(visit.rel_path)
        remembered = before.get(visit.rel_path)
        count = len(names) if names is not None else (remembered.file_count if remembered is not None else 0)
        row = RememberedFolder(
            visit.identity, visit.mtime_ns, visit.ctime_ns, False, visit.problems, count, visit.listed_at_ns, 0
        )
        remembered_now[visit.rel_path] = row
        if row != remembered:
            rows.append((visit.rel_path, row.identity, row.mtime_ns, row.ctime_ns, int(row.problems), count,
                         row.listed_at_ns))  # fmt: skip
    lost = before.keys() - remembered_now.keys()
    rewritten = [(folder,) for folder in [*lost, *listed]]
    with database.transaction():
        database.executemany("DELETE FROM archive_folders WHERE rel_path = ?", [(folder,) for folder in lost])
        database.executemany("DELETE FROM archive_files WHERE folder = ?", rewritten)
        database.executemany(
            """
            INSERT INTO archive_folders (rel_path, identity, mtime_ns, ctime_ns, problems, file_count, listed_at_ns)
            VALUES (?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (rel_path) DO UPDATE SET
                identity = excluded.identity, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,
                problems = excluded.problems, file_count = excluded.file_count, listed_at_ns = excluded.listed_at_ns
            """,
            rows,
        )
        database.executemany(
            "INSERT INTO archive_files (rel_path, folder) VALUES (?, ?)",
            [(name, folder) for folder, names in listed.items() for name in names],
        )
    return remembered_now
