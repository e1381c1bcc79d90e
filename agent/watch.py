"""Notice changes in the libraries as they happen (inotify), or say why a library is polled.

Why: a pass that walks the whole library every `scan.interval` costs time, CPU and sleepless
NAS disks in proportion to the library, and still picks a new file up to a whole interval late.
With inotify the kernel tells us which folder changed: the watcher marks that folder dirty
(`mark(library, folders)`, which the agent adds to `AgentState.dirty_folders` for the next
pass) and asks for a pass (`on_burst()`), debounced: QUIET_SECONDS after the last event of a
burst, and never more than MAX_DELAY_SECONDS after its first, so a copy of 1,000 files asks for
one or a few passes, not 1,000, and a single new file is looked at within a second.

Library: `inotify_simple`, a thin ctypes wrapper over the three syscalls (maintained, no
dependencies, no threads of its own). Its descriptor is read on the agent's asyncio loop
(`loop.add_reader`), and `inotify_add_watch` fails with the kernel's own errno, so running out
of watches (ENOSPC) or of instances (EMFILE) is known exactly, per library. (`watchfiles` hides
the watch limit inside its Rust thread; `asyncinotify` would do, but adds its own async layer.)

What is watched: every folder of each library's source, recursively (inotify is per folder),
following symlinked folders as the scan does, skipping hidden folders (`.*`, which the scan
skips too); folders created or moved in are watched as they appear (walked on the loop: a new
folder is small; the first walk of a library runs in a thread), folders deleted or moved out
are dropped. Events on hidden names are ignored (rsync's `.name.XXXXXX` in-flight copies).
Events that mark a folder: a file created, moved in or out, closed after writing, deleted or
its attributes changed (touch, chmod); a subfolder created, moved, deleted or chmod-ed (both
it and its parent). A queue overflow marks every folder of every watched library.

When a library is polled instead (the existing timed passes, every `scan.interval`), said once
in the log ("library polls for changes", with the reason), in `hb2r plan` and `/api/status`:
- its source is on a filesystem where other machines' changes send no event (agent.mounts);
- the watch limit (`fs.inotify.max_user_watches`) ran out while watching it: the watches it
  had are released (a half-watched library would miss changes silently), the others keep
  theirs; it is tried again on a config reload (raise the sysctl, then `systemctl reload hb2r`);
- no inotify instance could be made (`fs.inotify.max_user_instances`): every library polls;
- its source folder is missing, or was deleted, renamed away or unmounted while watched: it is
  watched again, whole, by the first `refresh()` (after each pass) that finds it back.
`refresh()` also notices a disk mounted over (or unmounted from under) a watched source, by
the root folder's identity, and watches the new one: the old watch would see nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inotify_simple import INotify
from inotify_simple import flags as inotify_flags

from agent.mounts import (
    PickUp,
    WatchStatus,
    instance_limit_reason,
    parse_mountinfo,
    pick_up,
    watch_limit_reason,
)

QUIET_SECONDS = 0.2
MAX_DELAY_SECONDS = 1.0
MOUNTINFO = Path("/proc/self/mountinfo")

_CHANGES = (
    inotify_flags.CREATE
    | inotify_flags.MOVED_TO
    | inotify_flags.MOVED_FROM
    | inotify_flags.CLOSE_WRITE
    | inotify_flags.DELETE
    | inotify_flags.ATTRIB
)
MASK = _CHANGES | inotify_flags.DELETE_SELF | inotify_flags.MOVE_SELF | inotify_flags.ONLYDIR
_ROOT_GONE = inotify_flags.DELETE_SELF | inotify_flags.MOVE_SELF | inotify_flags.UNMOUNT
ROOT_GONE_REASON = (
    "the source folder is missing, or was deleted, renamed away or unmounted; it is watched again when it is back"
)


def read_mountinfo() -> str:
    try:
        return MOUNTINFO.read_text(errors="replace")
    except OSError:
        return ""


def _read_limit(path: str) -> int | None:
    try:
        return int(Path(path).read_text())
    except (OSError, ValueError):
        return None


class _LimitReached(Exception):
    """inotify_add_watch said ENOSPC: the user's watch limit ran out."""


@dataclass
class _Library:
    name: str
    source: Path
    status: WatchStatus = field(default_factory=lambda: WatchStatus("polling", "not watched yet", 0))
    folders: dict[str, int] = field(default_factory=dict)  # relative folder -> watch descriptor
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the root when it was watched
    out_of_watches: bool = False  # polls for the watch limit: tried again only on watch() (a reload)
    watched_before: bool = False


class Watcher:
    """The agent's one inotify instance and the libraries it watches. Create it inside the
    running event loop; `close()` it on shutdown."""

    def __init__(
        self,
        *,
        mark: Callable[[str, set[str]], None],
        on_burst: Callable[[], None],
        log: Any,
        mountinfo: Callable[[], str] = read_mountinfo,
        statuses: dict[str, WatchStatus] | None = None,
    ) -> None:
        """`statuses` (e.g. `AgentState.watch`) is kept up to date with each library's status."""
        self._loop = asyncio.get_running_loop()
        self._statuses = {} if statuses is None else statuses
        self._mark_folders = mark
        self._on_burst = on_burst
        self._log = log
        self._mountinfo = mountinfo
        self._libraries: dict[str, _Library] = {}
        self._owners: dict[int, list[tuple[str, str]]] = {}  # watch descriptor -> (library, folder)
        self._lock = threading.Lock()  # the maps above: the first walk of a library runs in a thread
        self._serial = asyncio.Lock()  # one watch()/refresh() at a time
        self._burst_started: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._unavailable: str | None = None
        self._inotify: Any = None
        try:
            self._inotify = INotify(nonblocking=True)
        except OSError as error:
            self._unavailable = (
                instance_limit_reason(limit=_read_limit("/proc/sys/fs/inotify/max_user_instances"))
                if error.errno == errno.EMFILE
                else f"inotify is unavailable: {error.strerror or error}"
            )
        else:
            self._loop.add_reader(self._inotify.fileno(), self._on_readable)

    def fileno(self) -> int:
        return -1 if self._inotify is None else int(self._inotify.fileno())

    def status(self) -> dict[str, WatchStatus]:
        """Return each library's watch mode, why it polls, and how many folders are watched."""
        return dict(self._statuses)

    async def watch(self, libraries: Mapping[str, Path]) -> None:
        """Watch these libraries (name -> source folder) and no others: at start and on each
        reload. A library whose source changed is watched anew; one that polls because the
        watch limit ran out is tried again."""
        async with self._serial:
            for name in list(self._libraries):
                if name not in libraries or self._libraries[name].source != libraries[name]:
                    self._release(self._libraries.pop(name))
                    self._statuses.pop(name, None)
            for name, source in libraries.items():
                library = self._libraries.setdefault(name, _Library(name, source))
                library.out_of_watches = False
            await self._refresh()

    async def refresh(self) -> None:
        """Check every library again (after each pass): watch those that can be watched and are
        not, or whose root folder is another one now (a disk mounted over it); drop to polling
        those now on a remote filesystem. Skipped while a watch() or refresh() runs: it looks."""
        if self._serial.locked():
            return
        async with self._serial:
            await self._refresh()

    def close(self) -> None:
        """Stop watching: release every watch and the inotify descriptor."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inotify is not None:
            self._loop.remove_reader(self._inotify.fileno())
            self._inotify.close()
            self._inotify = None
        with self._lock:
            self._owners.clear()
            for library in self._libraries.values():
                library.folders.clear()

    # -- deciding and (re)watching ------------------------------------------------------

    async def _refresh(self) -> None:
        if not self._libraries:
            return
        mounts = parse_mountinfo(await asyncio.to_thread(self._mountinfo))
        for library in list(self._libraries.values()):
            decision, identity = await asyncio.to_thread(_look_at, library.source, mounts)
            if self._unavailable is not None or self._inotify is None:
                self._set_status(library, WatchStatus("polling", self._unavailable or "the watcher is stopped", 0))
            elif decision.mode == "polling":
                self._release(library)
                self._set_status(library, WatchStatus("polling", decision.reason, 0))
            elif identity is None:
                self._release(library)
                self._set_status(library, WatchStatus("polling", ROOT_GONE_REASON, 0))
            elif library.out_of_watches or (library.status.mode == "events" and identity == library.identity):
                continue
            else:
                await self._watch_whole(library, identity)

    async def _watch_whole(self, library: _Library, identity: tuple[int, int]) -> None:
        self._release(library)
        try:
            await asyncio.to_thread(self._add_tree, library, "")
        except _LimitReached:
            self._out_of_watches(library)
            return
        except OSError as error:  # the root itself could not be watched (gone, unreadable)
            self._release(library)
            self._set_status(library, WatchStatus("polling", f"{ROOT_GONE_REASON} ({error.strerror})", 0))
            return
        library.identity = identity
        self._set_status(library, WatchStatus("events", None, len(library.folders)))
        if library.watched_before:  # unwatched for a while: anything may have changed
            self._mark(library.name, set(library.folders) | {""})
        library.watched_before = True

    def _out_of_watches(self, library: _Library) -> None:
        needed = len(library.folders) + 1
        self._release(library)
        library.out_of_watches = True
        limit = _read_limit("/proc/sys/fs/inotify/max_user_watches")
        self._set_status(library, WatchStatus("polling", watch_limit_reason(limit=limit, folders_needed=needed), 0))

    def _put(self, library: _Library, status: WatchStatus) -> None:
        library.status = status
        if self._libraries.get(library.name) is library:
            self._statuses[library.name] = status

    def _set_status(self, library: _Library, status: WatchStatus) -> None:
        before = library.status
        self._put(library, status)
        if (before.mode, before.reason) == (status.mode, status.reason):
            return
        if status.mode == "events":
            self._log.info("library watched for changes", library=library.name, folders=status.folders)
        else:
            self._log.warning("library polls for changes", library=library.name, reason=status.reason)

    def _add_tree(self, library: _Library, start: str) -> list[str]:
        """Watch `start` (a folder relative to the source) and every folder below it; return
        those newly watched. Raise _LimitReached on ENOSPC, OSError if `start` cannot be watched."""
        added: list[str] = []
        visited: set[tuple[int, int]] = set()
        pending = [start]
        while pending:
            rel = pending.pop()
            path = os.path.join(library.source, rel) if rel else str(library.source)
            try:
                folder_stat = os.stat(path)
                identity = (folder_stat.st_dev, folder_stat.st_ino)
                if identity in visited or not stat.S_ISDIR(folder_stat.st_mode):
                    continue
                visited.add(identity)
                if self._inotify is None:
                    return added
                wd = int(self._inotify.add_watch(path, MASK))
            except OSError as error:
                if error.errno == errno.ENOSPC:
                    raise _LimitReached from error
                if rel == start:
                    raise
                continue  # vanished meanwhile, or unreadable: the scan reports it
            with self._lock:
                if library.folders.get(rel) != wd:
                    library.folders[rel] = wd
                    owners = self._owners.setdefault(wd, [])
                    if (library.name, rel) not in owners:
                        owners.append((library.name, rel))
            added.append(rel)
            try:
                with os.scandir(path) as entries:
                    for entry in entries:
                        if not entry.name.startswith(".") and entry.is_dir():  # follows symlinks, as the scan
                            pending.append(os.path.join(rel, entry.name) if rel else entry.name)
            except OSError:
                continue
        return added

    def _drop(self, library: _Library, rel: str) -> None:
        """Stop watching `rel` and every folder below it."""
        prefix = rel + "/"
        with self._lock:
            gone = [folder for folder in library.folders if folder == rel or folder.startswith(prefix)]
            descriptors = [(folder, library.folders.pop(folder)) for folder in gone]
            for folder, wd in descriptors:
                self._disown(wd, library.name, folder)

    def _release(self, library: _Library) -> None:
        """Stop watching every folder of the library."""
        with self._lock:
            for folder, wd in library.folders.items():
                self._disown(wd, library.name, folder)
            library.folders.clear()
            library.identity = None

    def _disown(self, wd: int, library: str, folder: str) -> None:
        """Take (library, folder) off the watch descriptor's owners; remove the watch when none is left.
        The caller holds the lock."""
        owners = self._owners.get(wd, [])
        if (library, folder) in owners:
            owners.remove((library, folder))
        if not owners:
            self._owners.pop(wd, None)
            self._remove_watch(wd)

    def _remove_watch(self, wd: int) -> None:
        if self._inotify is None:
            return
        with contextlib.suppress(OSError):  # already gone with its folder
            self._inotify.rm_watch(wd)

    # -- events --------------------------------------------------------------------------

    def _on_readable(self) -> None:
        if self._inotify is None:
            return
        try:
            events = self._inotify.read(timeout=0)
        except BlockingIOError:
            return
        for event in events:
            self._handle(event.wd, event.mask, event.name)

    def _handle(self, wd: int, mask: int, name: str) -> None:
        if mask & inotify_flags.Q_OVERFLOW:
            for library in self._libraries.values():
                if library.status.mode == "events":
                    self._mark(library.name, set(library.folders) | {""})
            return
        if mask & inotify_flags.IGNORED:
            self._forget_descriptor(wd)
            return
        with self._lock:
            owners = list(self._owners.get(wd, ()))
        for library_name, rel in owners:
            found = self._libraries.get(library_name)
            if found is None:
                continue
            library = found
            if mask & _ROOT_GONE:
                if rel == "":
                    self._root_gone(library)
                continue  # a subfolder: its parent's event says it
            if not name:  # the folder itself (its attributes)
                self._mark(library.name, {rel})
                continue
            if name.startswith("."):
                continue
            child = os.path.join(rel, name) if rel else name
            if not mask & inotify_flags.ISDIR:
                self._mark(library.name, {rel})
            elif mask & (inotify_flags.CREATE | inotify_flags.MOVED_TO):
                self._mark(library.name, {rel, child})
                self._watch_new(library, child)
            elif mask & (inotify_flags.MOVED_FROM | inotify_flags.DELETE):
                self._drop(library, child)
                self._mark(library.name, {rel, child})
                self._set_folders(library)
            elif mask & inotify_flags.ATTRIB:
                self._mark(library.name, {child})
                if child not in library.folders:  # made readable again
                    self._watch_new(library, child)

    def _watch_new(self, library: _Library, rel: str) -> None:
        """Watch a folder that appeared (and what it holds), and mark each of its folders: files
        may have landed in them before their watch existed."""
        try:
            added = self._add_tree(library, rel)
        except _LimitReached:
            self._out_of_watches(library)
            self._mark(library.name, {""})
            return
        except OSError:
            return  # gone again already
        self._mark(library.name, set(added))
        self._set_folders(library)

    def _set_folders(self, library: _Library) -> None:
        if library.status.mode == "events":
            self._put(library, WatchStatus("events", None, len(library.folders)))

    def _root_gone(self, library: _Library) -> None:
        self._release(library)
        self._set_status(library, WatchStatus("polling", ROOT_GONE_REASON, 0))
        self._mark(library.name, {""})

    def _forget_descriptor(self, wd: int) -> None:
        with self._lock:
            owners = self._owners.pop(wd, [])
            for library_name, rel in owners:
                library = self._libraries.get(library_name)
                if library is not None and library.folders.get(rel) == wd:
                    del library.folders[rel]
        for library_name, _ in owners:
            library = self._libraries.get(library_name)
            if library is not None:
                self._set_folders(library)

    def _mark(self, library: str, folders: Iterable[str]) -> None:
        """Mark folders dirty now; ask for a pass once the burst is over (at most a second on)."""
        self._mark_folders(library, set(folders))
        now = self._loop.time()
        if self._burst_started is None:
            self._burst_started = now
        due = min(self._burst_started + MAX_DELAY_SECONDS, now + QUIET_SECONDS)
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(due, self._burst_over)

    def _burst_over(self) -> None:
        self._timer = None
        self._burst_started = None
        self._on_burst()


def pick_up_now(source: Path) -> PickUp:
    """Return how the library at `source` would notice changes now (for `hb2r plan`): polling
    if its filesystem sends no events for other machines' changes, or if it is not a folder."""
    decision, identity = _look_at(source, parse_mountinfo(read_mountinfo()))
    if decision.mode == "events" and identity is None:
        return PickUp("polling", ROOT_GONE_REASON)
    return decision


def _look_at(source: Path, mounts: list[Any]) -> tuple[PickUp, tuple[int, int] | None]:
    """Return how the source's changes would be noticed, and its root folder's identity
    (None if it is not a folder now)."""
    real = os.path.realpath(source)
    try:
        root = os.stat(real)
    except OSError:
        return pick_up(real, mounts), None
    if not stat.S_ISDIR(root.st_mode):
        return pick_up(real, mounts), None
    return pick_up(real, mounts), (root.st_dev, root.st_ino)
