"""`hb2r backup` and `hb2r restore`: a consistent copy of the state database, and putting one back.

Why not `cp hb2r.db`: the agent keeps the database in WAL mode, so recent commits live in
`hb2r.db-wal` until a checkpoint, and a file copy taken while it writes can be torn. Both
directions go through SQLite's online backup API instead, in one step: the copy is one read
transaction, a snapshot at one commit, and in WAL mode it never blocks the agent's writers.

Backup: the source is opened read-only (no migration: the backup keeps the schema it had).
The copy is made in a private temp folder (0700) beside FILE, so that no one who may write
FILE's folder can slip a link under the copy or its journal; it is switched to
rollback-journal mode so it is one self-contained file, checked (`PRAGMA integrity_check`),
fsynced, and only then put in place: linked (fails if FILE appeared meanwhile) or, with
`--force`, renamed over FILE (a link at FILE is replaced, never followed).

Restore: FILE is checked first (an SQLite file, hb2r's tables, `integrity_check`, a schema
not newer than this hb2r; an older one is migrated when the agent next opens it). Then,
holding the agent lock (so no agent runs or starts meanwhile), the backup is copied into a
temp file in state_dir; the current database is brought to one file (its WAL merged by
switching it to rollback mode, which succeeds only when nothing else has it open) and kept
as `hb2r.db.before-restore` by a hard link; the copy is renamed over `hb2r.db`. The rename
is the only step that changes what `hb2r.db` is, so a failure at any point leaves the old
database in place. A current database SQLite cannot read at all (the usual reason to
restore) is kept byte for byte, a stale `-wal` (or `-journal`) beside it as
`hb2r.db.before-restore-wal`, so the new database never replays another database's log.

Both work only in a state folder that is the running user's alone (agent.store.private): run
them as the agent's user, e.g. `runuser -u hb2r -- hb2r restore ...`. The files they make
belong to that user; nothing is chowned. Effects are in `backup()`/`restore()`;
`inspect_database()` only reads; the `describe_*` functions are pure.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent.durable import fsync_file, fsync_folder
from agent.store.db import SCHEMA_VERSION, StateError, database_path
from agent.store.lock import LockHeld, agent_lock
from agent.store.private import check_state_dir, refuse_links
from agent.store.sql import StoreError
from agent.store.sqlite_files import DatabaseInUse, inspect, merge_wal, snapshot
from agent.wording import counted, human_size

SQLITE_MAGIC = b"SQLite format 3\x00"
REQUIRED_TABLES = ("jobs", "ledger", "users")  # hb2r's tables since schema version 1
BEFORE_RESTORE_SUFFIX = ".before-restore"
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
INTEGRITY_PROBLEMS_SHOWN = 3


class BackupError(Exception):
    """A backup or restore cannot be done; the message says why, and nothing was changed."""


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """What a checked hb2r database holds."""

    path: Path
    size: int
    schema_version: int
    jobs: int
    ledger_entries: int
    users: int


@dataclass(frozen=True, slots=True)
class Restored:
    """The outcome of a restore: what is now the database, and where the old one was kept."""

    source: DatabaseInfo
    database: Path
    kept: Path | None
    damaged_before: str | None  # why the previous database could not be read, if it could not


def describe_backup(info: DatabaseInfo) -> str:
    """Given a written backup, return the line `hb2r backup` prints."""
    return (
        f"Wrote {info.path}: {human_size(info.size)}, schema version {info.schema_version}, "
        f"{counted(info.jobs, 'job')}, {counted(info.ledger_entries, 'ledger entry', 'ledger entries')}, "
        f"{counted(info.users, 'user')}."
    )


def describe_restore(restored: Restored) -> list[str]:
    """Given a finished restore, return the lines `hb2r restore` prints."""
    source = restored.source
    lines = [
        f"Restored {source.path} into {restored.database}: schema version {source.schema_version}, "
        f"{counted(source.jobs, 'job')}, {counted(source.ledger_entries, 'ledger entry', 'ledger entries')}, "
        f"{counted(source.users, 'user')}."
    ]
    if source.schema_version < SCHEMA_VERSION:
        lines.append(f"It is migrated to schema version {SCHEMA_VERSION} when the agent next opens it.")
    if restored.kept is None:
        lines.append("There was no database before; nothing was kept.")
    elif restored.damaged_before is not None:
        lines.append(f"The previous database ({restored.damaged_before}) is kept as it was in {restored.kept}.")
    else:
        lines.append(f"The previous database is kept as {restored.kept}.")
    lines.append("Start the agent again, e.g. `systemctl start hb2r`.")
    return lines


def inspect_database(path: Path, *, name: str | None = None, refuse_newer: bool = True) -> DatabaseInfo:
    """Given a file, return what it holds if it is a sound hb2r database this hb2r can use.

    Raise BackupError (calling the file name, default its path) if it is missing, not an
    SQLite database, fails `PRAGMA integrity_check`, lacks hb2r's tables, or (if refuse_newer)
    has a schema newer than this hb2r knows.
    """
    name = name or str(path)
    try:
        if not path.exists():
            raise BackupError(f"{name}: no such file")
        if not path.is_file():
            raise BackupError(f"{name} is not a file")
        size = path.stat().st_size
        with path.open("rb") as file:
            header = file.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise BackupError(f"cannot read {name}: {error.strerror}") from None
    if header != SQLITE_MAGIC:
        raise BackupError(f"{name} is not an SQLite database")
    try:
        facts = inspect(path, count_rows_of=REQUIRED_TABLES)
    except StoreError as error:
        raise BackupError(f"{name} is not a usable SQLite database: {error}") from None
    problems = list(facts.problems)
    if problems != ["ok"]:
        shown = "; ".join(problems[:INTEGRITY_PROBLEMS_SHOWN])
        raise BackupError(f"{name} is damaged: PRAGMA integrity_check says: {shown}")
    version = facts.schema_version
    if version > SCHEMA_VERSION and refuse_newer:
        raise BackupError(
            f"{name} has schema version {version}, newer than this hb2r knows ({SCHEMA_VERSION}); "
            "use the hb2r that wrote it, or an older backup"
        )
    missing = [table for table in REQUIRED_TABLES if table not in facts.tables]
    if missing:
        raise BackupError(f"{name} is not an hb2r state database (no table {', '.join(missing)})")
    counts = [facts.row_counts[table] for table in REQUIRED_TABLES]
    jobs, ledger_entries, users = counts
    return DatabaseInfo(path, size, version, jobs, ledger_entries, users)


def backup(state_dir: Path, target: Path, *, force: bool = False) -> DatabaseInfo:
    """Given the state folder and a target file, write a consistent copy of the database there; return it.

    Raise BackupError if there is no database yet, the target's folder is missing or not
    writable, the target exists (unless force) or is the database itself, or the copy fails.
    """
    source = database_path(state_dir)
    try:
        if not source.is_file():
            raise BackupError(f"there is no state database at {source} yet; nothing to back up")
        check_state_dir(state_dir)
        refuse_links(source, *_side_files(source))
    except OSError as error:
        raise BackupError(f"cannot read state database {source}: {error.strerror}") from None
    except StateError as error:
        raise BackupError(str(error)) from None
    target = target.absolute()
    _refuse_live_target(target, source)
    folder = target.parent
    check_target(target, force=force)
    with _private_folder(folder, f".{target.name}.") as private:
        temp = private / target.name
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        try:
            snapshot(source, temp)
        except StoreError as error:
            raise BackupError(f"cannot copy state database {source}: {error}") from None
        # A newer schema is copied all the same: a backup taken before a downgrade must work.
        info = inspect_database(temp, name=f"the copy of {source}", refuse_newer=False)
        try:
            fsync_file(temp)
        except OSError as error:
            raise BackupError(f"cannot write {target}: {error.strerror}") from None
        _put_in_place(temp, target, replace=force)
    sync_placed(target)
    return DatabaseInfo(target, info.size, info.schema_version, info.jobs, info.ledger_entries, info.users)


def restore(state_dir: Path, source: Path) -> Restored:
    """Given the state folder and a backup file, make the backup the state database; return what was done.

    Raise BackupError if the backup is not a sound hb2r database for this hb2r, another
    process has the database open, or a step fails (the old database then stays in place);
    raise LockHeld (naming the pid) if an agent runs on state_dir.
    """
    info = inspect_database(source)
    database = database_path(state_dir)
    try:
        with agent_lock(state_dir, purpose="restore"):
            return _swap_in(info, database)
    except LockHeld:
        raise
    except StateError as error:
        raise BackupError(str(error)) from None
    except OSError as error:  # before the rename: the old database is in place
        raise BackupError(f"cannot restore into {state_dir}: {error.strerror or error}") from None


def _swap_in(info: DatabaseInfo, database: Path) -> Restored:
    """Holding the agent lock, copy the backup beside the database and rename it over it."""
    state_dir = database.parent
    refuse_links(database, *_side_files(database))
    with _temp_file(state_dir, f".{database.name}.restore-") as temp:
        try:
            snapshot(info.path, temp)
        except StoreError as error:
            raise BackupError(f"cannot copy {info.path} into {state_dir}: {error}") from None
        inspect_database(temp, name=f"the copy of {info.path}")  # as written, before it replaces anything
        fsync_file(temp)
        kept: Path | None = None
        damaged: str | None = None
        if database.exists():
            damaged = _merge_wal(database)
            kept = _keep_previous(database, damaged=damaged is not None)
        os.replace(temp, database)
    sync_placed(database)
    if kept is not None:
        with contextlib.suppress(OSError):  # done is done: the restore stands
            os.chmod(kept, 0o600)
    return Restored(source=info, database=database, kept=kept, damaged_before=damaged)


def _merge_wal(database: Path) -> str | None:
    """Merge the database's WAL into it and leave it one file; return None, or why it cannot be read.

    Raise BackupError if another process has it open (it is left as it was).
    """
    try:
        return merge_wal(database)
    except DatabaseInUse:
        raise BackupError(_in_use(database)) from None


def _keep_previous(database: Path, *, damaged: bool) -> Path:
    """Keep the current database as hb2r.db.before-restore (a hard link, or a copy); return that path."""
    kept = database.with_name(database.name + BEFORE_RESTORE_SUFFIX)
    with _temp_file(database.parent, f".{kept.name}.") as temp:
        try:
            os.unlink(temp)
            os.link(database, temp)
        except OSError:  # a filesystem without hard links
            _copy_bytes(database, temp)
        os.replace(temp, kept)
    for suffix in SIDE_SUFFIXES:
        side = Path(f"{database}{suffix}")
        if not side.exists():
            continue
        if damaged and suffix != "-shm":  # the unreadable database's log: keep it, out of the new one's way
            os.replace(side, Path(f"{kept}{suffix}"))
        else:  # merged (or of no use): it must not be replayed into the new database
            side.unlink()
    return kept


def check_target(target: Path, *, force: bool) -> None:
    """Raise BackupError if a backup cannot be written at target (an absolute path): its folder is
    missing, it is a folder, or it exists and force is not given."""
    folder = target.parent
    try:
        if not folder.is_dir():
            raise BackupError(f"cannot write {target}: folder {folder} does not exist")
        if target.is_dir():
            raise BackupError(f"cannot write {target}: it is a folder")
        if target.exists() and not force:
            raise BackupError(f"{target} exists; give --force to replace it")
    except OSError as error:  # e.g. a folder this user may not enter
        raise BackupError(f"cannot write {target}: {error.strerror}") from None


def _put_in_place(temp: Path, target: Path, *, replace: bool) -> None:
    """Move the finished temp file to target: over it if replace, else only if target does not exist."""
    try:
        if replace:
            os.replace(temp, target)
            return
        os.link(temp, target)  # atomic "create if absent"
    except FileExistsError:
        raise BackupError(f"{target} exists; give --force to replace it") from None
    except OSError as error:
        if replace or not _links_unsupported(error):
            raise BackupError(f"cannot write {target}: {error.strerror}") from None
        if target.exists():  # a filesystem without hard links (a NAS share): check, then rename
            raise BackupError(f"{target} exists; give --force to replace it") from None
        os.rename(temp, target)


def _side_files(database: Path) -> list[Path]:
    return [Path(f"{database}{suffix}") for suffix in SIDE_SUFFIXES]


def _links_unsupported(error: OSError) -> bool:
    return error.errno in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK)


def _refuse_live_target(target: Path, database: Path) -> None:
    """Raise BackupError if target is the database or one of its side files."""
    live = {database.absolute(), *(Path(f"{database.absolute()}{suffix}") for suffix in SIDE_SUFFIXES)}
    resolved = {path.resolve() for path in live}
    if target in live or target.resolve() in resolved:
        raise BackupError(f"{target} is the state database itself; write the backup elsewhere")


def _in_use(database: Path) -> str:
    return (
        f"state database {database} is open in another process (hb2r jobs, retry or plan?); "
        "try again when it has finished"
    )


@contextlib.contextmanager
def _temp_file(folder: Path, prefix: str) -> Iterator[Path]:
    """Make an empty 0600 file in folder; yield its path; remove it afterwards if it is still there."""
    try:
        descriptor, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=".tmp")
    except OSError as error:
        raise BackupError(f"cannot write into {folder}: {error.strerror}") from None
    os.close(descriptor)
    path = Path(name)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def _private_folder(folder: Path, prefix: str) -> Iterator[Path]:
    """Make a 0700 folder in folder; yield its path; remove it and what is left in it afterwards."""
    try:
        path = Path(tempfile.mkdtemp(dir=folder, prefix=prefix, suffix=".tmp"))
    except OSError as error:
        raise BackupError(f"cannot write into {folder}: {error.strerror}") from None
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sync_placed(path: Path) -> None:
    """Make path's new name durable; raise BackupError if the disk fails (path is in place all the same)."""
    try:
        fsync_folder(path.parent)
    except OSError as error:
        raise BackupError(
            f"{path} is in place, but its folder could not be synced to disk ({error.strerror}); "
            "it may not survive a power cut: check the disk"
        ) from None


def _copy_bytes(source: Path, target: Path) -> None:
    with source.open("rb") as reader, target.open("wb") as writer:
        while chunk := reader.read(1 << 20):
            writer.write(chunk)
        writer.flush()
        os.fsync(writer.fileno())
