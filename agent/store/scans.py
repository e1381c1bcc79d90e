"""The scan memory: what each pass saw, so that stability and the vanish breaker survive restarts,
and so that a pass can take the files of a folder that did not change without a stat
(`agent.incremental_scan`: each file's ctime and folder, each folder a walk reached)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from agent.domain import FolderVisit, RememberedFolder, SeenFile, SourceFile
from agent.store.sql import Database

# Folders per query when files are read back by folder: well under SQLite's 32,766 parameters.
FOLDERS_PER_QUERY = 500


def load_seen(database: Database) -> dict[tuple[str, str], SeenFile]:
    rows = database.execute(
        "SELECT library, rel_path, size, mtime_ns, fingerprint, changed_at_ns, ctime_ns FROM seen_files"
    ).fetchall()
    return {
        (library, rel_path): SeenFile(size, mtime_ns, fingerprint, changed, ctime)
        for library, rel_path, size, mtime_ns, fingerprint, changed, ctime in rows
    }


def load_file_counts(database: Database) -> dict[str, int]:
    return dict(database.execute("SELECT library, file_count FROM library_scans").fetchall())


class FullPass(NamedTuple):
    at: str  # ISO-8601, when its scan was recorded
    seconds: float  # how long its walk took


def load_full_passes(database: Database) -> dict[str, FullPass]:
    """Return, by library, the last recorded full pass (libraries without one are left out)."""
    rows = database.execute(
        "SELECT library, full_at, full_seconds FROM library_scans WHERE full_at IS NOT NULL"
    ).fetchall()
    return {library: FullPass(at, float(seconds)) for library, at, seconds in rows}


def load_folders(database: Database, library: str) -> dict[str, RememberedFolder]:
    """Return the folders the last recorded walk of library reached, by path ("" is the source)."""
    rows = database.execute(
        "SELECT rel_path, identity, mtime_ns, ctime_ns, via_link, problems, file_count, listed_at_ns,"
        " newest_change_ns FROM scanned_folders WHERE library = ?",
        (library,),
    ).fetchall()
    return {
        rel_path: RememberedFolder(identity, mtime, ctime, bool(via_link), bool(problems), count, listed_at, newest)
        for rel_path, identity, mtime, ctime, via_link, problems, count, listed_at, newest in rows
    }


def load_folder_files(database: Database, library: str, folders: Sequence[str]) -> dict[str, list[SourceFile]]:
    """Return the remembered files of these folders of library, by folder, as the walk saw them
    (fingerprints left out, as a walk leaves them). A folder one of whose files has no ctime
    recorded cannot be given back and is left out: the walk lists it."""
    found: dict[str, list[SourceFile]] = {}
    incomplete: set[str] = set()
    for start in range(0, len(folders), FOLDERS_PER_QUERY):
        chunk = folders[start : start + FOLDERS_PER_QUERY]
        placeholders = ", ".join("?" * len(chunk))
        query = f"SELECT folder, rel_path, size, mtime_ns, ctime_ns FROM seen_files WHERE library = ? AND folder IN ({placeholders})"  # noqa: S608, E501 - placeholders only
        rows = database.execute(query, (library, *chunk)).fetchall()
        for folder, rel_path, size, mtime_ns, ctime_ns in rows:
            if ctime_ns is None:
                incomplete.add(folder)
            else:
                found.setdefault(folder, []).append(SourceFile(rel_path, size, mtime_ns, ctime_ns))
    return {folder: files for folder, files in found.items() if folder not in incomplete}


def record_scan(
    database: Database,
    *,
    library: str,
    files: Iterable[SourceFile],
    previous: Mapping[tuple[str, str], SeenFile],
    now_ns: int,
    scanned_at: str,
    folders: Iterable[FolderVisit] | None = None,
    full_seconds: float | None = None,
) -> None:
    """Record one good scan of a library in a single transaction; `previous` is what the
    database holds now (`load_seen`). With `full_seconds`, the scan was a full pass that took
    that long (`load_full_passes`).

    A file whose size or mtime differs from the previous scan gets `changed_at_ns = now_ns`;
    files no longer present are forgotten. Fingerprints are kept while size and mtime hold.
    With `folders` (the folders the walk reached), they are remembered with their file counts
    and newest change, and the folders no longer reached are forgotten.
    Only rows that differ are written: an idle library of 10,000 files costs no writes.
    """
    files = list(files)
    changed_rows = []
    present = set()
    counts: dict[str, int] = {}
    newest: dict[str, int] = {}
    for source in files:
        rel_path = source.rel_path
        present.add(rel_path)
        before = previous.get((library, rel_path))
        changed = before is not None and (before.size, before.mtime_ns) != (source.size, source.mtime_ns)
        changed_at = now_ns if changed else (before.changed_at_ns if before else None)
        kept = before.fingerprint if before is not None and not changed else None
        row = SeenFile(source.size, source.mtime_ns, source.fingerprint or kept, changed_at, source.ctime_ns)
        folder = rel_path.rpartition("/")[0]
        counts[folder] = counts.get(folder, 0) + 1
        newest[folder] = max(newest.get(folder, 0), source.mtime_ns, source.ctime_ns, changed_at or 0)
        if row != before or before.ctime_ns != row.ctime_ns:
            changed_rows.append(
                (library, rel_path, folder, row.size, row.mtime_ns, row.ctime_ns, row.fingerprint, row.changed_at_ns)
            )
    gone = [(library, rel_path) for (name, rel_path) in previous if name == library and rel_path not in present]
    with database.transaction():
        database.executemany("DELETE FROM seen_files WHERE library = ? AND rel_path = ?", gone)
        database.executemany(
            """
            INSERT INTO seen_files (library, rel_path, folder, size, mtime_ns, ctime_ns, fingerprint, changed_at_ns)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (library, rel_path) DO UPDATE SET
                folder = excluded.folder, size = excluded.size, mtime_ns = excluded.mtime_ns,
                ctime_ns = excluded.ctime_ns, fingerprint = excluded.fingerprint,
                changed_at_ns = excluded.changed_at_ns
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
        if full_seconds is not None:
            database.execute(
                "UPDATE library_scans SET full_at = ?, full_seconds = ? WHERE library = ?",
                (scanned_at, full_seconds, library),
            )
        if folders is not None:
            _record_folders(database, library=library, folders=folders, counts=counts, newest=newest)


def _record_folders(
    database: Database,
    *,
    library: str,
    folders: Iterable[FolderVisit],
    counts: Mapping[str, int],
    newest: Mapping[str, int],
) -> None:
    before = load_folders(database, library)
    rows = []
    reached = set()
    for visit in folders:
        reached.add(visit.rel_path)
        row = RememberedFolder(
            visit.identity,
            visit.mtime_ns,
            visit.ctime_ns,
            visit.via_link,
            visit.problems,
            counts.get(visit.rel_path, 0),
            visit.listed_at_ns,
            newest.get(visit.rel_path, 0),
        )
        if before.get(visit.rel_path) != row:
            rows.append((library, visit.rel_path, *row[:3], int(row.via_link), int(row.problems), *row[5:]))
    database.executemany(
        "DELETE FROM scanned_folders WHERE library = ? AND rel_path = ?",
        [(library, rel_path) for rel_path in before.keys() - reached],
    )
    database.executemany(_UPSERT_FOLDER, rows)


def record_walk(
    database: Database,
    *,
    library: str,
    listed: Mapping[str, Sequence[SourceFile]],
    folders: Iterable[FolderVisit],
    fingerprints: Mapping[str, tuple[int, int, str]] | None = None,
    now_ns: int,
    scanned_at: str,
    full_seconds: float | None = None,
    before_walk: Mapping[str, RememberedFolder] | None = None,
) -> dict[str, RememberedFolder]:
    """Record one good walk of a library, writing only what it can have changed: the files of the
    folders it listed (`listed`: folder -> files, as `record_scan` records them), the folders it no
    longer reached (forgotten, with their files), the folder rows that differ, and fingerprints
    read this pass for files elsewhere (`fingerprints`: path -> (size, mtime_ns, fingerprint),
    kept while size and mtime hold). The file count is the sum of the folders'. One transaction.
    `before_walk`: the library's folders as `load_folders` gave them before the walk, if the caller
    has them (they are read again otherwise). Return the library's folders as the store now
    remembers them: what `load_folders` would read once the transaction is committed.
    """
    before_folders = load_folders(database, library) if before_walk is None else before_walk
    visits = {visit.rel_path: visit for visit in folders}
    lost = sorted(before_folders.keys() - visits.keys())
    counts: dict[str, int] = {}
    newest: dict[str, int] = {}
    with database.transaction():
        database.executemany("DELETE FROM seen_files WHERE library = ? AND folder = ?", [(library, f) for f in lost])
        database.executemany("DELETE FROM scanned_folders WHERE library = ? AND rel_path = ?",
                             [(library, f) for f in lost])  # fmt: skip
        # A page of folders at a time: a full walk lists every folder, and their rows are many.
        names = sorted(listed)
        for start in range(0, len(names), FOLDERS_PER_QUERY):
            page = names[start : start + FOLDERS_PER_QUERY]
            rows, gone = _changed_rows(library, {folder: listed[folder] for folder in page},
                                       _seen_in(database, library, page), now_ns=now_ns, counts=counts,
                                       newest=newest)  # fmt: skip
            database.executemany("DELETE FROM seen_files WHERE library = ? AND rel_path = ?", gone)
            database.executemany(_UPSERT_SEEN, rows)
        folder_rows = []
        total = 0
        remembered_now: dict[str, RememberedFolder] = {}
        for rel_path, visit in visits.items():
            remembered = before_folders.get(rel_path)
            if rel_path in listed or remembered is None:
                count, latest = counts.get(rel_path, 0), newest.get(rel_path, 0)
            else:
                count, latest = remembered.file_count, remembered.newest_change_ns
            total += count
            row_folder = RememberedFolder(
                visit.identity, visit.mtime_ns, visit.ctime_ns, visit.via_link, visit.problems, count,
                visit.listed_at_ns, latest,
            )  # fmt: skip
            remembered_now[rel_path] = row_folder
            if row_folder != remembered:
                folder_rows.append((library, rel_path, *row_folder[:3], int(row_folder.via_link),
                                    int(row_folder.problems), *row_folder[5:]))  # fmt: skip
        database.executemany(_UPSERT_FOLDER, folder_rows)
        database.executemany(
            "UPDATE seen_files SET fingerprint = ? WHERE library = ? AND rel_path = ? AND size = ? AND mtime_ns = ?"
            " AND fingerprint IS NULL",
            [(fingerprint, library, rel_path, size, mtime) for rel_path, (size, mtime, fingerprint)
             in (fingerprints or {}).items() if _folder(rel_path) not in listed],
        )  # fmt: skip
        database.execute(
            """
            INSERT INTO library_scans (library, file_count, scanned_at) VALUES (?, ?, ?)
            ON CONFLICT (library) DO UPDATE SET file_count = excluded.file_count, scanned_at = excluded.scanned_at
            """,
            (library, total, scanned_at),
        )
        if full_seconds is not None:
            database.execute(
                "UPDATE library_scans SET full_at = ?, full_seconds = ? WHERE library = ?",
                (scanned_at, full_seconds, library),
            )
    return remembered_now


def _changed_rows(
    library: str,
    listed: Mapping[str, Sequence[SourceFile]],
    previous: Mapping[str, SeenFile],
    *,
    now_ns: int,
    counts: dict[str, int],
    newest: dict[str, int],
) -> tuple[list[tuple[object, ...]], list[tuple[str, str]]]:
    """Given some listed folders' files and what the memory held of them, return the seen rows to
    write (new or changed) and the (library, path) of those gone; fill each folder's file count
    and newest change in `counts` and `newest`."""
    rows: list[tuple[object, ...]] = []
    gone: list[tuple[str, str]] = []
    remembered_in: dict[str, list[str]] = {}
    for rel_path in previous:
        remembered_in.setdefault(_folder(rel_path), []).append(rel_path)
    for folder, files in listed.items():
        present = set()
        for source in files:
            present.add(source.rel_path)
            before = previous.get(source.rel_path)
            changed = before is not None and (before.size, before.mtime_ns) != (source.size, source.mtime_ns)
            changed_at = now_ns if changed else (before.changed_at_ns if before else None)
            kept = before.fingerprint if before is not None and not changed else None
            row = SeenFile(source.size, source.mtime_ns, source.fingerprint or kept, changed_at, source.ctime_ns)
            newest[folder] = max(newest.get(folder, 0), source.mtime_ns, source.ctime_ns, changed_at or 0)
            if row != before or before.ctime_ns != row.ctime_ns:
                rows.append((library, source.rel_path, folder, row.size, row.mtime_ns, row.ctime_ns, row.fingerprint,
                             row.changed_at_ns))  # fmt: skip
        counts[folder] = len(files)
        gone.extend((library, rel_path) for rel_path in remembered_in.get(folder, ()) if rel_path not in present)
    return rows, gone


_UPSERT_SEEN = """
    INSERT INTO seen_files (library, rel_path, folder, size, mtime_ns, ctime_ns, fingerprint, changed_at_ns)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (library, rel_path) DO UPDATE SET
        folder = excluded.folder, size = excluded.size, mtime_ns = excluded.mtime_ns,
        ctime_ns = excluded.ctime_ns, fingerprint = excluded.fingerprint, changed_at_ns = excluded.changed_at_ns
"""

_UPSERT_FOLDER = """
    INSERT INTO scanned_folders (
        library, rel_path, identity, mtime_ns, ctime_ns, via_link, problems, file_count, listed_at_ns,
        newest_change_ns
    )
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (library, rel_path) DO UPDATE SET
        identity = excluded.identity, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns,
        via_link = excluded.via_link, problems = excluded.problems, file_count = excluded.file_count,
        listed_at_ns = excluded.listed_at_ns, newest_change_ns = excluded.newest_change_ns
"""


def _seen_in(database: Database, library: str, folders: Sequence[str]) -> dict[str, SeenFile]:
    found: dict[str, SeenFile] = {}
    for start in range(0, len(folders), FOLDERS_PER_QUERY):
        chunk = folders[start : start + FOLDERS_PER_QUERY]
        placeholders = ", ".join("?" * len(chunk))
        query = f"SELECT rel_path, size, mtime_ns, fingerprint, changed_at_ns, ctime_ns FROM seen_files WHERE library = ? AND folder IN ({placeholders})"  # noqa: S608, E501 - placeholders only
        for rel_path, size, mtime_ns, fingerprint, changed, ctime in database.execute(
            query, (library, *chunk)
        ).fetchall():
            found[rel_path] = SeenFile(size, mtime_ns, fingerprint, changed, ctime)
    return found


def _folder(rel_path: str) -> str:
    return rel_path.rpartition("/")[0]
