"""Whether a library can be watched with inotify, or must be polled: pure decisions.

inotify reports what the kernel of THIS machine does to a file. On a filesystem that other
machines write to (NFS, SMB/CIFS, FUSE mounts such as sshfs or rclone, 9p, Ceph, ...), a file
copied in by the NAS or another client sends no event at all: a watched library there would
simply never see new files. Such a library is polled instead (a pass every `scan.interval`),
and says so. The filesystem is read from the mount table (/proc/self/mountinfo): the mount
holding the source is the one with the longest mount point that is a prefix of its real path
(the last one listed, when two are mounted at one point: it is on top). A remote filesystem
mounted anywhere inside the library makes it poll too: its part would go unseen.

Choices where the issue is silent:
- Every FUSE filesystem (`fuse`, `fuse.*`) polls: sshfs and rclone are remote, and a pool such
  as mergerfs is often written to through its member disks, which sends the pool no event.
  `fuseblk` (ntfs-3g, exfat on a local disk) is a local disk: it gets events.
- Cluster and VM-shared filesystems (ocfs2, gfs2, lustre, virtiofs, vboxsf, ...) poll, for the
  same reason as NFS.
- A mount table that cannot be read means events (the common case of a local disk); the
  watcher still falls back if watching fails.

The module reads nothing: the mount table comes in as text (see agent.watch for the reading).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Mode = Literal["events", "polling"]

# Filesystems where changes made by other machines send this machine no inotify event.
REMOTE_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "ncpfs",
        "9p",
        "ceph",
        "cephfs",
        "glusterfs",
        "afs",
        "openafs",
        "coda",
        "davfs",
        "lustre",
        "gpfs",
        "beegfs",
        "orangefs",
        "pvfs2",
        "ocfs2",
        "gfs2",
        "virtiofs",
        "vboxsf",
        "vmhgfs",
        "fuse",
    }
)
INOTIFY_WATCHES_SYSCTL = "fs.inotify.max_user_watches"
INOTIFY_INSTANCES_SYSCTL = "fs.inotify.max_user_instances"


@dataclass(frozen=True)
class Mount:
    mount_point: str
    fs_type: str
    source: str


@dataclass(frozen=True)
class PickUp:
    """How a library's changes would be noticed: by inotify events, or by polling (and why)."""

    mode: Mode
    reason: str | None = None


@dataclass(frozen=True)
class WatchStatus:
    """How a library's changes ARE noticed now: the mode, why it polls (None for events), and
    how many of its folders inotify watches."""

    mode: Mode
    reason: str | None
    folders: int


def parse_mountinfo(text: str) -> list[Mount]:
    """Given the text of /proc/self/mountinfo, return its mounts in order; skip malformed lines."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            separator = fields.index("-", 6)
            mount_point, fs_type, source = fields[4], fields[separator + 1], fields[separator + 2]
        except (ValueError, IndexError):
            continue
        mounts.append(Mount(_unescape(mount_point), fs_type, _unescape(source)))
    return mounts


def _unescape(field: str) -> str:
    """Undo the kernel's octal escapes (\\040 space, \\011 tab, \\012 newline, \\134 backslash)."""
    if "\\" not in field:
        return field
    out, index = [], 0
    while index < len(field):
        octal = field[index + 1 : index + 4]
        if field[index] == "\\" and len(octal) == 3 and all(digit in "01234567" for digit in octal):
            out.append(chr(int(octal, 8)))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return "".join(out)


def _inside(path: str, mount_point: str) -> bool:
    return mount_point == "/" or path == mount_point or path.startswith(mount_point.rstrip("/") + "/")


def mount_of(path: str, mounts: Sequence[Mount]) -> Mount | None:
    """Return the mount holding `path` (an absolute, resolved path), or None if none does."""
    best: Mount | None = None
    for mount in mounts:
        if _inside(path, mount.mount_point) and (best is None or len(mount.mount_point) >= len(best.mount_point)):
            best = mount
    return best


def is_remote(fs_type: str) -> bool:
    """Return whether changes made by other machines on this filesystem type send no events here."""
    return fs_type in REMOTE_TYPES or fs_type.startswith("fuse.")


def pick_up(source: str, mounts: Sequence[Mount]) -> PickUp:
    """Given a library's resolved source path and the mount table, return how its changes are noticed."""
    holder = mount_of(source, mounts)
    if holder is not None and is_remote(holder.fs_type):
        return PickUp("polling", _remote_reason(f"{source} is", holder))
    for mount in mounts:
        inside = mount.mount_point != source and _inside(mount.mount_point, source)
        # ... and not hidden by a mount on top of it
        if inside and is_remote(mount.fs_type) and mount_of(mount.mount_point, mounts) == mount:
            return PickUp("polling", _remote_reason(f"{mount.mount_point}, inside it, is", mount))
    return PickUp("events")


def _remote_reason(what: str, mount: Mount) -> str:
    return (
        f"{what} on {mount.fs_type} ({mount.source} at {mount.mount_point}), "
        "where changes made by other machines send no inotify events"
    )


def watch_limit_reason(*, limit: int | None, folders_needed: int | None) -> str:
    """Return why a library polls when inotify_add_watch failed with ENOSPC."""
    current = "" if limit is None else f" ({limit})"
    needed = "" if folders_needed is None else f"; the library has at least {folders_needed} folders"
    return (
        f"the inotify watch limit {INOTIFY_WATCHES_SYSCTL}{current} ran out{needed}; "
        f"raise it (e.g. `sysctl -w {INOTIFY_WATCHES_SYSCTL}=524288`, and in /etc/sysctl.d/) "
        "and reload hb2r to watch it again"
    )


def instance_limit_reason(*, limit: int | None) -> str:
    """Return why every library polls when inotify_init failed with EMFILE."""
    current = "" if limit is None else f" ({limit})"
    return (
        f"no inotify instance could be made: {INOTIFY_INSTANCES_SYSCTL}{current} ran out; "
        f"raise it (e.g. `sysctl -w {INOTIFY_INSTANCES_SYSCTL}=512`) and restart hb2r"
    )
