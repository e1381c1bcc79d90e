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
  encoding goes on, as an operator who gave `.sync/` to Resilio alone would expect.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from agent import publish
from agent.config.models import Config
from agent.publish import PARTIAL_DIR


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
    return unpublishable_libraries(config), problems
