"""Writing a file so that a crash leaves the old one or the new one, never half; and syncing folders.

Every module of agent/ that replaces a file in place (the archive's `.sync/IgnoreList`, the
generated admin password) or makes a rename durable (publishing, backup, restore) comes here,
so that all of them treat a failing disk the same way.

What an operator wants from a folder fsync that fails: a real I/O error (EIO, ENOSPC, EROFS,
...) means the rename may not survive a power cut, and it is raised, so that the caller
reports it rather than recording as done what the disk may forget. Only the errnos with which
a file system says it cannot fsync a folder at all are tolerated, because there is nothing
more to do on it: EINVAL (Linux's answer for FUSE, SMB and some NFS mounts), ENOTSUP /
EOPNOTSUPP, and EBADF (some network file systems refuse fsync on a read-only descriptor,
which is the only kind a folder can be opened with). Opening the folder itself is never
tolerated: a folder that is missing or unreadable is an error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

# How a file system says "I cannot fsync a folder" (see the module docstring).
CANNOT_SYNC_FOLDERS = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF})


def fsync_folder(folder: Path) -> None:
    """Make the names in folder (a rename, a new file) durable.

    Raise OSError if the folder cannot be opened or the disk fails; return quietly if the
    file system cannot sync folders at all (CANNOT_SYNC_FOLDERS).
    """
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in CANNOT_SYNC_FOLDERS:
            raise
    finally:
        os.close(descriptor)


def fsync_file(path: Path) -> None:
    """Write path's data to disk now (a link at path is refused, not followed). Raise OSError if it cannot."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_atomically(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace path's content with data: after a crash path holds the old data or the new, whole.

    The data goes to a temp file beside path (created exclusively, so a link planted there is
    not followed), is fsynced, renamed over path, and the folder is fsynced. With mode, the
    file gets exactly that mode (0o600 for a secret) and the running user as owner. Without
    it, it keeps the old file's mode (0o644 for a new file) and, where allowed, its owner
    (Resilio's user, say). Raise OSError if any step fails: path is then untouched and the
    temp file removed.
    """
    try:
        old = None if mode is not None else path.stat()
    except FileNotFoundError:
        old = None
    descriptor, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".hb2r-tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode if mode is not None else stat.S_IMODE(old.st_mode) if old else 0o644)
            if old:
                with contextlib.suppress(PermissionError):  # keep the old owner when allowed to
                    os.fchown(handle.fileno(), old.st_uid, old.st_gid)
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    fsync_folder(path.parent)
