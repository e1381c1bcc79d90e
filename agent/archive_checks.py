"""What the archive must be like for hb2r to publish into it, checked before encoding, not after.

An encode costs minutes to hours; a fault of the archive that makes its output unpublishable
must be found before HandBrakeCLI starts, and reported where an operator looks (/health, the
library's condition), not discovered once per file as a failed job. Here:
- the free space the running encodes still need (for the gate);
- a file hb2r did not make at a job's output path (a conflict, found before encoding);
- an output folder on another mount than the archive's temp folder: the atomic rename into
  place fails with EXDEV. Found from /proc/self/mountinfo (a bind mount of the same file
  system has the same st_dev but still refuses the rename), st_dev where it cannot be read.
  The pass checks each library's output folder; the dispatcher checks each job's own folder
  again just before it starts HandBrakeCLI, for a mount that appeared since;
- a Resilio `.sync/IgnoreList` hb2r cannot write: reported (Resilio may sync temp files), and
  encoding goes on, as an operator who gave `.sync/` to Resilio alone would expect;
- a source rewritten during its encode (its output would mix two contents), checked after
  the encode and before anything is published;
- whether the archive folder's owner and group (Resilio, which owns its share) can read the
  files and folders hb2r publishes, with the mode and group `access()` gives them.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Protocol

from agent import publish
from agent.config.models import Config
from agent.publish import PARTIAL_DIR
from agent.scan import fingerprint


class _Encoding(Protocol):
    estimated_output: int
    temp: Path | None


def free_space(path: Path) -> int | None:
    """Return the free bytes an unprivileged writer may use on path's file system; None if it cannot be measured."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def written_so_far(running: Iterable[_Encoding]) -> list[tuple[int, int]]:
    """Return (estimated output size, bytes its temp file holds now) for each running encode."""
    pairs = []
    for encoding in running:
        written = 0
        if encoding.temp is not None:
            try:
                written = encoding.temp.stat().st_size
            except OSError:
                written = 0
        pairs.append((encoding.estimated_output, written))
    return pairs


def foreign_output(archive: Path, output_path: str, *, made_by_hb2r: bool) -> str | None:
    """Given a job's output path and whether the ledger says hb2r made what is there, return why
    publishing would replace a file hb2r did not make (an adopted or unknown one), or None."""
    final = archive / output_path
    if made_by_hb2r or not os.path.lexists(final):
        return None
    return f"{final} already exists and hb2r did not make it; it was left untouched"


def conflict_reason(job_id: int, detail: str) -> str:
    """Given a publish conflict, return the job's error: what is in the way and what the operator can do."""
    return (
        f"conflict: {detail}. hb2r never replaces a file it did not make (an adopted one included): "
        f"move it away, then run `hb2r retry {job_id}`"
    )


# --- Output folders on another mount (the atomic rename would fail with EXDEV) ---

MOUNTINFO = Path("/proc/self/mountinfo")


def mount_points(mountinfo: str) -> list[str]:
    """Given the text of /proc/self/mountinfo, return every mount point (octal escapes such as \\040 decoded)."""
    points = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.append(re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), fields[4]))
    return points


def mounts_in_the_way(*, archive: str, target: str, mounts: Iterable[str]) -> list[str]:
    """Given the archive's real path, a folder in it (real path) and the mount points, return the
    mounts that put target, or part of it, on another mount than the archive itself: any mount
    point inside the archive that is target, lies inside it or contains it. Pure."""
    inside_archive = [point for point in mounts if _strictly_inside(point, archive)]
    return sorted(
        {
            point
            for point in inside_archive
            if point == target or _strictly_inside(point, target) or _strictly_inside(target, point)
        }
    )


def _strictly_inside(path: str, folder: str) -> bool:
    return path != folder and path.startswith(folder.rstrip("/") + "/")


def _read_mount_points() -> list[str] | None:
    try:
        return mount_points(MOUNTINFO.read_text(errors="surrogateescape"))
    except OSError:
        return None


def cross_mount_problem(archive: Path, folder: Path) -> str | None:
    """Given the archive and a folder in it (existing or not), return why a file cannot be renamed
    from the archive's temp folder into it atomically (another mount on the way), or None."""
    real_archive, real_folder = os.path.realpath(archive), os.path.realpath(folder)
    points = _read_mount_points()
    in_the_way: list[str] = []
    if points is not None:
        partial = os.path.join(real_archive, PARTIAL_DIR)
        in_the_way = mounts_in_the_way(archive=real_archive, target=partial, mounts=points)
        in_the_way += mounts_in_the_way(archive=real_archive, target=real_folder, mounts=points)
    elif _device(real_archive) != _device(_nearest_existing(real_folder)):
        in_the_way = [_nearest_existing(real_folder)]
    if not in_the_way:
        return None
    return (
        f"output folder {folder} is on another mount ({', '.join(sorted(set(in_the_way)))}) than the archive "
        f"{archive}: a finished encode cannot be moved into place atomically there (EXDEV). Unmount it or "
        "mount the whole archive as one file system; nothing of this library is encoded until then"
    )


def unpublishable_libraries(config: Config) -> dict[str, str]:
    """Return library -> why its outputs cannot be published (its output folder is on another mount)."""
    archive = config.paths.archive
    problems = {}
    for library in config.libraries:
        problem = cross_mount_problem(archive, archive / library.output)
        if problem is not None:
            problems[library.name] = problem
    return problems


def _nearest_existing(path: str) -> str:
    while not os.path.lexists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


# --- The Resilio share's IgnoreList ---

IGNORE_LIST_CHECK = "ignore-list"


def ignore_list_problem(archive: Path) -> str | None:
    """Given the archive, make sure a Resilio share's IgnoreList lists the temp folder; return why it
    cannot (the list is not writable), or None. Encoding goes on either way: the operator decides."""
    try:
        publish.ensure_ignore_listed(archive)
    except (OSError, publish.UnsafePath) as error:
        ignore_list = archive / publish.SYNC_DIR / publish.IGNORE_LIST
        cause = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        return (
            f"cannot add {publish.PARTIAL_DIR} to {ignore_list}: {cause}. Resilio may sync hb2r's unfinished "
            f"temp files to peers; add the line '{publish.PARTIAL_DIR}' to it, or let hb2r write it"
        )
    return None


def check(config: Config) -> tuple[dict[str, str], dict[str, str]]:
    """Run the archive checks of a pass; return (library -> why it cannot publish, check -> archive problem)."""
    archive = config.paths.archive
    if not archive.is_dir():
        return {}, {}  # /health reports a missing archive itself, and scans pause
    problems = {}
    ignore_list = ignore_list_problem(archive)
    if ignore_list is not None:
        problems[IGNORE_LIST_CHECK] = ignore_list
    permissions = permissions_problem(config)
    if permissions is not None:
        problems[PERMISSIONS_CHECK] = permissions
    return unpublishable_libraries(config), problems


# --- Can Resilio read what hb2r publishes? ---

PERMISSIONS_CHECK = "permissions"


def folder_mode(file_mode: int) -> int:
    """Given the mode of published files, return the mode of created folders: x wherever r is."""
    return file_mode | ((file_mode & 0o444) >> 2)


def access(config: Config) -> publish.Access:
    """Return the mode and group outputs get: `paths.archive_mode`, and `paths.archive_group` or the
    archive folder's own group (None if neither can be found: the file system's default stays)."""
    file_mode = int(config.paths.archive_mode, 8)
    return publish.Access(file_mode=file_mode, folder_mode=folder_mode(file_mode), group_id=_group_id(config))


def _group_id(config: Config) -> int | None:
    if config.paths.archive_group is not None:
        try:
            return grp.getgrnam(config.paths.archive_group).gr_gid
        except KeyError:
            return None
    try:
        return config.paths.archive.stat().st_gid
    except OSError:
        return None


READ = 0o4
READ_AND_ENTER = 0o5


def can_access(
    *, reader_uid: int | None, reader_groups: Collection[int], owner_uid: int, group_id: int, mode: int, need: int
) -> bool:
    """Given a reader (uid None: any member of reader_groups), a file's owner, group and mode, and the
    permission bits needed (READ for a file, READ_AND_ENTER for a folder), return whether the reader
    has them. Pure; like the kernel, only the first class that matches counts."""
    if reader_uid == 0:
        return True
    if reader_uid is not None and reader_uid == owner_uid:
        shift = 6
    elif group_id in reader_groups:
        shift = 3
    else:
        shift = 0
    return (mode >> shift) & need == need


def permissions_problem(config: Config) -> str | None:
    """Return why the archive's owner or group could not read what hb2r publishes, or None.

    The archive folder's owner and group stand in for Resilio (which owns its share folder);
    what hb2r writes is owned by its own user, with `access(config)`'s group and modes.
    """
    archive = config.paths.archive
    if config.paths.archive_group is not None and _group_id(config) is None:
        return f"paths.archive_group {config.paths.archive_group!r} is not a group on this host"
    try:
        share = archive.stat()
    except OSError:
        return None  # a missing archive is reported on its own
    given = access(config)
    group_id = given.group_id if given.group_id is not None else os.getegid()
    if os.geteuid() != 0 and group_id not in {os.getegid(), *os.getgroups()}:
        if config.paths.archive_group is not None:
            return (
                f"hb2r is not a member of group {_group_name(group_id)} (paths.archive_group), so it cannot give "
                "outputs that group: add it (the inventory's hb2r_extra_groups), or change paths.archive_group"
            )
        group_id = os.getegid()  # the archive folder's group cannot be given: outputs keep hb2r's own
    owner = _user_name(share.st_uid)
    readers: list[tuple[str, int | None, Collection[int]]] = [
        (f"the archive's owner {owner}", share.st_uid, _groups_of(share.st_uid)),
        (f"the archive's group {_group_name(share.st_gid)}", None, {share.st_gid}),
    ]
    mode_text = f"{given.file_mode:04o}"
    for who, uid, groups in readers:
        files, folders = (
            can_access(
                reader_uid=uid, reader_groups=groups, owner_uid=os.geteuid(), group_id=group_id, mode=mode, need=need
            )
            for mode, need in ((given.file_mode, READ), (given.folder_mode, READ_AND_ENTER))
        )
        if not (files and folders):
            return (
                f"{who} (Resilio?) cannot read what hb2r publishes: files {mode_text}, folders "
                f"{given.folder_mode:04o}, owner {_user_name(os.geteuid())}, group {_group_name(group_id)}. "
                "Set paths.archive_mode (e.g. '0664') or paths.archive_group"
            )
    return None


def _groups_of(uid: int) -> set[int]:
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return set()
    return set(os.getgrouplist(entry.pw_name, entry.pw_gid))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


# --- The source must be what the job was queued for, unchanged from start to end ---


class _QueuedContent(Protocol):
    @property
    def fingerprint(self) -> str: ...


def source_changed(source: Path, *, before: os.stat_result, job: _QueuedContent) -> str | None:
    """Given a source after its encode, its stat from before the encode and its job, return why the
    encode may hold other content than the job's (size, mtime or fingerprint moved), or None.

    A source rewritten in place during the encode gives an output made of two contents, which may
    still pass every check of the output. The failure is temporary: the next pass queues the new
    content as a new job, which supersedes this one.
    """
    try:
        after = source.stat()
        current = fingerprint(source, size=after.st_size)
    except OSError as error:
        return f"source changed during the encode: it cannot be read now ({error.strerror}); nothing was published"
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or current != job.fingerprint:
        return (
            "source changed during the encode (size, modification time or content differ from what was queued); "
            "nothing was published: the next pass queues its new content"
        )
    return None
