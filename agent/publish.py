"""Put transcodes into the archive. No other module writes there.

Resilio Sync shares whatever appears in the archive as soon as it appears: a half-written
file, or a whole but broken encode, would be sent to every peer and kept there. So a file
may only ever appear under its final name complete and verified:

- HandBrakeCLI writes into `<archive>/.hb2r-partial/`, which is listed in the share's
  `.sync/IgnoreList`, so Resilio never sends what is still being written;
- `agent.verify.verify()` accepts an encode only if HandBrakeCLI says it succeeded *and*
  the output is as long as the source: a truncated source still makes HandBrakeCLI exit 0;
- the verified file is fsynced, renamed into place (atomic, because the partial folder is
  on the archive's file system) and its folder fsynced: the same-file-system temp, fsync,
  `os.replace` pattern ansible-runner uses for its artifacts. After a crash the final path
  holds the whole file or nothing.

A file at the final path that hb2r did not make is never overwritten: the caller knows its
own outputs from the ledger and says so with `may_replace`. Without it the file is placed
with `link()`, which fails if the name is taken, so not even a file that appears at the last
moment is clobbered. Every path is checked to stay inside the archive, so a '..' or a
symbolic link cannot make hb2r write or delete anywhere else.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import os
import re
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from agent.durable import fsync_file, fsync_folder, write_atomically

PARTIAL_DIR = ".hb2r-partial"
SYNC_DIR = ".sync"
IGNORE_LIST = "IgnoreList"
# Folders of the archive that no output may be published into.
RESERVED_DIRS = (PARTIAL_DIR, SYNC_DIR)

# A temp file named by an hb2r that did not tag them with its instance yet.
_UNTAGGED_TEMP = re.compile(r"[0-9]+\.[A-Za-z0-9]+")
# HandBrake's hb_error_code (libhb/common.h), which --json reports as WorkDone.Error.
# How link() says the file system has no hard links (FAT, exFAT, some FUSE and SMB mounts).
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS})


@dataclass(frozen=True)
class Access:
    """The mode and group published files and created folders get, whatever hb2r's umask
    (the unit's UMask=0027 would make them unreadable to Resilio's user); see `paths.archive_mode`."""

    file_mode: int
    folder_mode: int
    group_id: int | None  # None: leave the group the file system gives


class PublishConflict(Exception):
    """The final path holds a file hb2r did not make; it was left untouched."""


class UnsafePath(PublishConflict):
    """A path leads out of the archive (through '..' or a symbolic link) or out of the folder it
    must be in; nothing was written or deleted. A PublishConflict, so that callers that report
    conflicts report this too."""


def instance_tag(state_dir: Path) -> str:
    """Given an agent's state folder, return the tag its temp files carry (8 hex digits).

    Several agents, each with its own state folder (and job numbers from 1), may publish into
    one archive: the tag, from the host's name and the state folder's real path, keeps their
    temp files apart, and each removes only its own. One state folder has one agent at a time
    (`agent.store.lock`), so the tag is that agent's.
    """
    identity = f"{socket.gethostname()}\0{os.path.realpath(state_dir)}".encode("utf-8", "surrogateescape")
    return hashlib.blake2b(identity, digest_size=4).hexdigest()


def partial_path(
    archive: Path,
    *,
    job_id: int,
    extension: str,
    instance: str | None = None,
    host: str | None = None,
    token: int | None = None,
) -> Path:
    """Given a job, its container's extension ('.mkv') and its agent's `instance_tag`, return where
    HandBrakeCLI writes its output: `<archive>/.hb2r-partial/<instance>-<job id><extension>`; with
    the host's name and the job's lease token, `<host>-<instance>-<job id>-<token><extension>`:
    hosts sharing one archive and one queue each know their own temp files, and a job claimed
    again (a new token) never writes into the file of the host that lost it."""
    if host is not None and instance is not None and token is not None:
        return archive / PARTIAL_DIR / f"{host}-{instance}-{job_id}-{token}{extension}"
    name = f"{job_id}{extension}" if instance is None else f"{instance}-{job_id}{extension}"
    return archive / PARTIAL_DIR / name


def is_inside_archive(archive: Path, path: Path) -> bool:
    """Return whether path, with '..' and symbolic links resolved, lies inside the archive (not the archive itself)."""
    root = os.path.realpath(archive)
    target = os.path.realpath(path)
    return target != root and os.path.commonpath([root, target]) == root


def prepare_partial_dir(archive: Path, *, ignore_list: bool = True) -> Path:
    """Given the archive, create its partial folder (0755) if missing, keep it out of the share, and return it.

    With ignore_list False the caller has already seen to `.sync/IgnoreList` (and reports
    when it cannot be written). Raise FileNotFoundError if the archive is missing (not
    mounted?): creating it would write below the mount point. Raise UnsafePath if the
    partial folder is a symbolic link.
    """
    if ignore_list:
        ensure_ignore_listed(archive)  # before the folder exists, so Resilio never indexes it
    folder = _partial_folder(archive)
    try:
        folder.mkdir(mode=0o755)
    except FileExistsError:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} exists and is not a folder; remove it") from None
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"archive {archive} is missing (not mounted?)") from None
    else:
        folder.chmod(0o755)  # mkdir's mode is masked by the umask
        fsync_folder(archive)
    return folder


def ensure_ignore_listed(archive: Path) -> bool:
    """Given the archive, make sure a Resilio share ignores the partial folder; return True if the list changed.

    Only where `<archive>/.sync/` exists. The IgnoreList's other lines, its byte-order mark
    and its line endings are kept, and it is replaced atomically: Resilio never reads half a list.
    """
    sync_folder = archive / SYNC_DIR
    if not sync_folder.is_dir():
        return False
    ignore_list = sync_folder / IGNORE_LIST
    _require_inside(archive, ignore_list)
    try:
        content = ignore_list.read_bytes()
    except FileNotFoundError:
        content = b""
    bom = codecs.BOM_UTF8 if content.startswith(codecs.BOM_UTF8) else b""
    text = content[len(bom) :].decode("utf-8", "surrogateescape")  # undecodable bytes survive the round trip
    if PARTIAL_DIR in text.splitlines():
        return False
    newline = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith(("\n", "\r")):
        text += newline
    write_atomically(ignore_list, bom + (text + PARTIAL_DIR + newline).encode("utf-8", "surrogateescape"))
    return True


def sync_to_disk(temp: Path) -> None:
    """Write temp's data to disk now. The slow part of publishing (seconds for a big file): the
    dispatcher does it before opening the store's transaction that records the output, so that
    the transaction never holds its rows across it. `publish` syncs again, which is then quick.
    Raise OSError if it cannot be done (nothing is published then).
    """
    fsync_file(temp)


def publish(temp: Path, final: Path, *, may_replace: bool, access: Access | None = None) -> None:
    """Given a verified encode in `<archive>/.hb2r-partial/`, make it appear whole at final, in the same archive.

    Parent folders are created. With access, the file gets its mode and group before it appears,
    and so do the folders created. Raise PublishConflict if final exists and may_replace is
    False, or is a folder: the temp file stays and final is untouched. Raise UnsafePath if
    temp is not in a partial folder or final leads out of its archive (or into a reserved
    folder); OSError with errno EXDEV if they are on different file systems.
    """
    if temp.parent.name != PARTIAL_DIR:
        raise UnsafePath(f"refusing to publish {temp}: only files in the archive's {PARTIAL_DIR} folder are published")
    archive = temp.parent.parent
    _partial_folder(archive)
    _require_inside(archive, temp)
    _require_placeable(archive, final)
    descriptor = os.open(temp, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UnsafePath(f"refusing to publish {temp}: not a regular file")
        if access is not None:
            _apply_access(descriptor, mode=access.file_mode, group_id=access.group_id)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    _make_folders(final.parent, access)
    _place(temp, final, may_replace=may_replace)


def move_output(
    archive: Path, old_rel: str, new_rel: str, *, may_replace: bool = False, access: Access | None = None
) -> None:
    """Given two output paths relative to the archive, move the first to the second atomically.

    A renamed source's transcode follows it instead of being encoded again. Parent folders
    are created; folders the move leaves empty are removed, up to the library's output folder.
    Raise FileNotFoundError if the old output is gone, PublishConflict if the new path is
    taken and may_replace is False, UnsafePath if either path leads out of the archive.
    """
    old, new = archive / old_rel, archive / new_rel
    _require_placeable(archive, old)
    _require_placeable(archive, new)
    try:
        old_mode = os.lstat(old).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"cannot move output {old_rel} to {new_rel}: it is gone") from None
    if not stat.S_ISREG(old_mode):
        raise UnsafePath(f"refusing to move {old}: not a regular file")
    if os.path.normpath(old) == os.path.normpath(new):
        return
    _make_folders(new.parent, access)
    _place(old, new, may_replace=may_replace)
    _remove_emptied_folders(archive, old.parent)


def discard_partial(temp: Path) -> None:
    """Remove one temp file of a failed or stopped encode; refuse any path outside `.hb2r-partial`."""
    if temp.parent.name != PARTIAL_DIR or temp.parent.is_symlink():
        raise UnsafePath(f"refusing to remove {temp}: it is not in a {PARTIAL_DIR} folder")
    temp.unlink(missing_ok=True)


def clean_partials(archive: Path, *, instance: str | None = None, host: str | None = None) -> list[Path]:
    """Given the archive, delete what interrupted encodes left in its partial folder; return the removed files.

    Only files directly in `<archive>/.hb2r-partial/` are removed: hb2r makes nothing else
    there. Folders in it, and everything outside it, are left alone. With an instance tag only
    that agent's temp files are removed (with a host too: only those named for that host), and
    those named `<job id>.<ext>` or `<instance>-<job id>.<ext>` by earlier hb2r versions; another
    agent's or host's are left alone: it may still be encoding into them.
    """
    folder = _partial_folder(archive)
    if not folder.is_dir():
        return []
    _require_inside(archive, folder)
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                continue
            if instance is not None and not _own_temp(entry.name, instance=instance, host=host):
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return sorted(removed)


def _own_temp(name: str, *, instance: str, host: str | None) -> bool:
    """Return whether a temp file's name is this agent's (and host's, if given)."""
    if _UNTAGGED_TEMP.fullmatch(name):
        return True
    if host is None:
        return name.startswith(f"{instance}-")
    earlier = name.startswith(f"{instance}-") and _UNTAGGED_TEMP.fullmatch(name[len(instance) + 1 :]) is not None
    return earlier or name.startswith(f"{host}-{instance}-")


def _require_inside(archive: Path, path: Path) -> None:
    if not is_inside_archive(archive, path):
        raise UnsafePath(f"refusing {path}: it leads out of the archive {archive} (through '..' or a symbolic link)")


def _require_placeable(archive: Path, path: Path) -> None:
    _require_inside(archive, path)
    for reserved in RESERVED_DIRS:
        folder = archive / reserved
        if os.path.realpath(path) == os.path.realpath(folder) or is_inside_archive(folder, path):
            raise UnsafePath(f"refusing {path}: outputs never go into the archive's {reserved} folder")


def _partial_folder(archive: Path) -> Path:
    folder = archive / PARTIAL_DIR
    if folder.is_symlink():
        raise UnsafePath(f"{folder} is a symbolic link; hb2r writes and deletes only in a real folder there")
    return folder


def _make_folders(folder: Path, access: Access | None = None) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for new in reversed(missing):
        new.mkdir(exist_ok=True)
        if access is not None:
            descriptor = os.open(new, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                _apply_access(descriptor, mode=access.folder_mode, group_id=access.group_id)
            finally:
                os.close(descriptor)
        fsync_folder(new.parent)


def _apply_access(descriptor: int, *, mode: int, group_id: int | None) -> None:
    if group_id is not None and os.fstat(descriptor).st_gid != group_id:
        # Allowed only to a member of the group; the start-up check reports when hb2r is not one.
        with contextlib.suppress(PermissionError):
            os.fchown(descriptor, -1, group_id)
    os.fchmod(descriptor, mode)  # after chown, which may clear setgid bits


def _place(source: Path, destination: Path, *, may_replace: bool) -> None:
    if destination.is_dir():
        raise PublishConflict(f"{destination} is a folder; hb2r never replaces it")
    if may_replace:
        _rename(source, destination)
    else:
        _rename_without_replacing(source, destination)
    fsync_folder(destination.parent)
    if source.parent != destination.parent:
        fsync_folder(source.parent)


def _rename_without_replacing(source: Path, destination: Path) -> None:
    conflict = PublishConflict(f"{destination} already exists and hb2r did not make it; it was left untouched")
    try:
        os.link(source, destination)  # fails if the name is taken, even by a file that just appeared
    except FileExistsError:
        raise conflict from None
    except OSError as error:
        if error.errno == errno.EXDEV:
            raise _cross_device(source, destination) from error
        if error.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(destination):
            raise conflict from None
        _rename(source, destination)
        return
    try:
        os.unlink(source)
    except FileNotFoundError:
        pass
    except OSError:
        os.unlink(destination)  # our own new link: undo, so that nothing changed
        raise


def _rename(source: Path, destination: Path) -> None:
    try:
        os.replace(source, destination)
    except OSError as error:
        if error.errno == errno.EXDEV:
            raise _cross_device(source, destination) from error
        raise


def _cross_device(source: Path, destination: Path) -> OSError:
    return OSError(
        errno.EXDEV,
        f"cannot move {source} to {destination} atomically: they are on different file systems. "
        f"The archive's {PARTIAL_DIR} folder and its output folders must be on one file system "
        "(is one of them a separate mount?)",
    )


def _remove_emptied_folders(archive: Path, folder: Path) -> None:
    root = os.path.realpath(archive)
    while os.path.dirname(os.path.realpath(folder)) != root and is_inside_archive(archive, folder):
        try:
            folder.rmdir()  # fails unless empty
        except OSError:
            return
        fsync_folder(folder.parent)
        folder = folder.parent
