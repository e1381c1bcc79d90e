"""Publish a source itself into the archive (a rule or `hdr:` said `copy`), through the same
atomic publish as an encode.

Where the archive is on the source's file system, the copy is a hard link: no data is written
and the archive's file is the source's (same inode). Its mode and group are then left as the
source's: changing them would change the source, which hb2r never writes to. Elsewhere the
bytes are copied into `<archive>/.hb2r-partial/`, read back and compared (size and blake2b)
with the source before they are published: a copy that does not match is never published.
Either way the temp file appears at its final path by `os.replace` (publish.publish), never
over an existing file.

A hard link changes the source's ctime (its link count): the scan sees it as changed and
waits `stable_after` once more before it is in sync again; its content is untouched.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path
from typing import Literal

from agent import publish

CHUNK = 1024 * 1024
_NO_LINK = frozenset({errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP})


class CopyMismatch(OSError):
    """The copy read back differs from its source: nothing was published."""


def publish_copy(
    source: Path, final: Path, *, temp: Path, access: publish.Access | None = None, may_replace: bool = False
) -> Literal["link", "copy"]:
    """Given a source file, its final path in the archive and a temp path in the archive's partial
    folder, publish the source at final (a hard link, else a verified copy); return which.

    Raise publish.PublishConflict if final exists (unless may_replace: hb2r made it), OSError
    (CopyMismatch for a copy that does not read back the same) if it cannot be done; the temp
    file is removed then.
    """
    how = stage(source, temp)
    try:
        publish.publish(temp, final, may_replace=may_replace, access=access if how == "copy" else None)
    except BaseException:
        publish.discard_partial(temp)
        raise
    return how


def stage(source: Path, temp: Path) -> Literal["link", "copy"]:
    """Put the source's bytes at temp (in the archive's partial folder), unpublished: a hard link,
    else a copy read back and compared; return which. Raise OSError (the temp file removed then)."""
    temp.unlink(missing_ok=True)
    try:
        try:
            os.link(source, temp, follow_symlinks=False)
        except OSError as error:
            if error.errno not in _NO_LINK:
                raise
        else:
            return "link"
        shutil.copyfile(source, temp, follow_symlinks=False)
        if digest(temp) != digest(source):
            raise CopyMismatch(errno.EIO, f"the copy of {source} does not read back the same")
    except BaseException:
        publish.discard_partial(temp)
        raise
    return "copy"


def digest(path: Path) -> tuple[int, str]:
    """Return a file's size and blake2b, read whole."""
    hasher = hashlib.blake2b()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            size += len(chunk)
            hasher.update(chunk)
    return size, hasher.hexdigest()
