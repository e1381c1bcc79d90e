"""`hb2r backup` and `hb2r restore` when `store.url` names PostgreSQL (see agent.store.postgres_dump).

The backup file is handled as SQLite's is (`agent.backup`): written 0600 in a private temp folder
beside FILE, checked (`pg_restore --list` reads it back), fsynced, then linked into place (or,
with --force, renamed over FILE). It is safe while agents run: pg_dump reads one snapshot.
Restore loads FILE into the configured database, which must be empty (nothing there to lose
or mix with); migrations newer than the backup run when the agent next opens the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from agent.backup import BackupError, _private_folder, _put_in_place, check_target, sync_placed
from agent.durable import fsync_file
from agent.store.choose import store_location
from agent.store.postgres_dump import check_archive, dump, restore
from agent.store.postgres_schema import SCHEMA_VERSION
from agent.store.sql import StoreError
from agent.wording import counted, human_size

if TYPE_CHECKING:
    from agent.config.models import Config


def backup_postgres(config: Config, target: Path, *, force: bool = False) -> str:
    """Write a pg_dump archive of the configured PostgreSQL store into target; return the line to print.

    Raise BackupError if target's folder is missing, target exists (unless force), or the dump fails.
    """
    where = store_location(config)
    target = target.absolute()
    folder = target.parent
    check_target(target, force=force)
    with _private_folder(folder, f".{target.name}.") as private:
        temp = private / target.name
        temp.touch(mode=0o600, exist_ok=False)
        try:
            dump(config.store.url, password_file=config.store.password_file, target=temp)
            check_archive(temp)
            fsync_file(temp)
        except StoreError as error:
            raise BackupError(f"cannot back up the {where}: {error}") from None
        except OSError as error:
            raise BackupError(f"cannot write {target}: {error.strerror}") from None
        size = temp.stat().st_size
        _put_in_place(temp, target, replace=force)
    sync_placed(target)
    return f"Wrote {target}: {human_size(size)}, a pg_dump archive (custom format) of the {where}."


def restore_postgres(config: Config, source: Path) -> list[str]:
    """Load the pg_dump archive source into the configured (empty) PostgreSQL store; return the lines to print.

    Raise BackupError if source is not such an archive, the store cannot be reached or is not
    empty, or pg_restore fails (then nothing was loaded).
    """
    where = store_location(config)
    if not source.is_file():
        raise BackupError(f"{source}: no such file")
    try:
        check_archive(source)
        found = restore(config.store.url, password_file=config.store.password_file, source=source)
    except StoreError as error:
        raise BackupError(str(error) if where.rsplit(" ", 1)[-1] in str(error) else f"{where}: {error}") from None
    version = found["schema_version"]
    lines = [
        f"Restored {source} into the {where}: schema version {version}, {counted(found['jobs'], 'job')}, "
        f"{counted(found['ledger'], 'ledger entry', 'ledger entries')}, {counted(found['users'], 'user')}."
    ]
    if version < SCHEMA_VERSION:
        lines.append(f"It is migrated to schema version {SCHEMA_VERSION} when the agent next opens it.")
    elif version > SCHEMA_VERSION:
        lines.append(f"Its schema is newer than this hb2r knows ({SCHEMA_VERSION}): run the hb2r that wrote it.")
    lines.append("Start the agent again, e.g. `systemctl start hb2r`.")
    return lines
