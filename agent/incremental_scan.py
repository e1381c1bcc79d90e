"""Passes that cost what changed: list only the folders that moved, take the rest from the scan memory.

Why: a full walk lists every folder and stats every file on every pass (1,000,000 files: four
seconds, 300 MB, a NAS whose disks never sleep) although between two passes almost nothing
changes. A folder's listing changes only when its mtime moves (an entry created, removed or
renamed in it), so a folder whose mtime has not moved holds the files it held, and those are
in the scan memory already. This module is the design's source of truth; the batch planner
(`agent.batch_plan`), the archive's walk (`agent.archive_walk`) and the engine's wiring follow it.

What is remembered (the scan memory, in the store, written in the pass's transaction and only
when the pass records a scan: a paused library's scan is no baseline, and neither is its memory)
- `seen_files`: each file's size, mtime, ctime (to give the file back without a stat), the
  folder it is in, its fingerprint while size and mtime hold, when a scan last saw it change.
- `scanned_folders`: each folder a walk reached (`""` is the source folder itself): its identity
  (`dev:ino`: a disk mounted over it, or another folder renamed into its place, differs), mtime
  and ctime (a chmod moves only the ctime), whether a symlink led to it, how many files it
  holds, when it was last listed, and the newest change among its files (the latest of their
  mtime, ctime and seen change), which says whether they are still settling.
- `library_scans`: the file count of the last good scan (the vanish breaker's baseline), and
  when the last full pass ran and how long it took (`/api/status`).
- `archive_folders`, `archive_files`: the same for the archive's output folders (names only).
A folder whose listing had a problem (an unreadable folder, a file name that is not UTF-8) is
remembered as such and listed again every pass, as a full walk would; one whose own name is
not UTF-8 cannot be stored: its parent is listed every pass instead.
A pass records only what its walk can have changed (`Store.record_walk`): the folders it
listed or no longer reached, and the fingerprints it read; an unchanged library costs no write.

What a pass reads
- one stat of the source folder, and one stat of each remembered folder the walk reaches: the
  walk descends the remembered tree, so a folder is reached exactly when a full walk would
  reach it (a folder removed, made unreadable or hidden behind a symlink loop is not);
- a listing (scandir, one stat per candidate file) of the folders that are not remembered, whose
  identity, mtime or ctime moved, whose last listing is racy (their mtime within RACY_NS of
  it: a file made in the same clock tick would not move the mtime), that hold files still
  settling (newest change + max(stable_after, RACY_NS) after now), that were marked dirty
  (`AgentState.dirty_folders`, consumed at the start of the pass: by inotify, and by the
  dispatcher when an encode found its source rewritten), or all of them in a full pass (the
  first after a start or a config change, then every `scan.full_interval`: `full_pass_due`);
- the files of every other folder from the scan memory, without a stat.
Both kinds of walk share one walker (`agent.scan.walk_library`), which uses no store (it runs
in a thread; the remembered folders are loaded before it, the kept folders' files after):
subfolders are taken in name order
and a folder reached twice (links, bind mounts) is kept where it is met first, so the two agree
on the same tree. What only a full pass can see, and so is late by up to `scan.full_interval`
where inotify is not there to say it: a file rewritten in place, without a create or rename in
its folder, after it had settled (a copy resumed after stalling longer than `stable_after`).
A full pass logs what it found that the memory had missed in the folders an incremental pass
would have kept (`Missed`: a count and the first paths).

The archive's outputs are remembered the same way (`agent.archive_walk`,
`agent.incremental_archive`): its folders and the names in them; a pass lists only the archive
folders that moved.

Planning in batches (`agent.batch_plan`, `agent.plan_from_store`; the engine plans this way,
see below for which folders; `hb2r plan` does not yet):
memory bounded by a batch of folders, not the library. `plan()` stays pure: it is a function
over one batch (the files of some whole folders, with their ledger rows, seen rows, the outputs
they name and the rows of renamed libraries holding those outputs) plus the library's context,
and the claims the batches before it made. Where each fact comes from, without the library:
- "present now" is the scan memory: a pass records the walk (seen rows, folders) BEFORE it
  plans, once the pause reason is known, so a ledger row is vanished when it has no seen row
  (less the paths an unreadable folder hides). `hb2r plan` writes nothing: it records its full
  walk into a temporary table of its own (SQLite's TEMP, also beside PostgreSQL) and plans from
  that, so its memory stays bounded too;
- pause reasons and the vanish breaker: the file count now = the sum of `scanned_folders.file_count`
  after the walk, against `library_scans.file_count`; files hidden by an unreadable folder are
  the remembered counts under it; no file rows are read;
- renames: a new stable file whose size equals a vanished row's is fingerprinted (the sizes of
  vanished rows by index: ledger (library, size)) and matched against the vanished rows of its
  library with that fingerprint whose output exists (ledger (library, fingerprint)), the first
  by path; the batches run in `file_order` and carry the claims, so the first file wins, as now;
- conflicts, adoption, preset drift: an output path mirrors its source's folder, so a batch
  needs only its folders' ledger rows (ledger (library, folder)), the archive names of the
  paths it names (`archive_files`) and the rows of unconfigured libraries holding those paths
  (ledger output_path, unique);
- "source vanished" drift after the last batch: the vanished rows in path order (an anti-join
  of ledger and seen_files: streamed, in a full pass; see below for the others);
- users: few, whole.
In PostgreSQL, path order is asked with `COLLATE "C"` (code point order, as Python's and SQLite's).

Which folders a running agent plans (`agent.engine.PlannedFolders`): those the walk listed
(changed, settling, dirty; a listed folder left with no file has nothing to plan), those whose
last planning left work in them (transcodes at any stage of their job, waits, renames,
adoptions: the dispatcher's publishes and the pass's own moves change their ledger rows),
those whose output folder in the archive was listed or is gone, and all of them in a full pass,
after a config or preset change and after a pause. The others keep the drift and skips counted
at their last planning (per folder, in the engine's memory: /api/status counts the whole
library); "source vanished" drift and the walk's problems are the library's, decided every
pass (the vanished rows are read by an anti-join, a page at a time). A queued job no planned
folder wants is cancelled, as before: a quiet folder holds no transcode, so no job of it is
wanted. Not yet: `hb2r plan` walks in full and plans the whole Observation (to come: plan and
print batch by batch, its walk in a temporary table, the renderings streamed).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.config.models import Library
from agent.domain import FolderVisit, RememberedFolder, SourceFile, SourceStatus
from agent.scan import LibraryWalk, walk_library, with_kept_files

NS_PER_SECOND = 1_000_000_000
# A change within this long of a listing may not have moved the folder's mtime (timestamps are
# coarse: a clock tick on Linux filesystems, 2 s on FAT and some SMB servers): list it again.
RACY_NS = 2 * NS_PER_SECOND


def listing_stands(remembered: RememberedFolder, visit: FolderVisit, *, now_ns: int, settle_ns: int) -> bool:
    """Given what the memory holds of a folder and what its stat says now, return whether its
    remembered listing still holds (see the module docstring). Pure."""
    if remembered.problems:
        return False
    if (remembered.identity, remembered.mtime_ns, remembered.ctime_ns, remembered.via_link) != (
        visit.identity,
        visit.mtime_ns,
        visit.ctime_ns,
        visit.via_link,
    ):
        return False
    if max(remembered.mtime_ns, remembered.ctime_ns) >= remembered.listed_at_ns - RACY_NS:
        return False  # racy: changed in the tick it was listed in
    return remembered.newest_change_ns + max(settle_ns, RACY_NS) <= now_ns  # nothing settling in it


@dataclass
class FolderMemory:
    """The remembered folders of one library as a walk reads them (`agent.scan.WalkMemory`)."""

    folders: Mapping[str, RememberedFolder]
    now_ns: int
    settle_ns: int
    dirty: Collection[str] = ()
    _children: dict[str, list[tuple[str, bool]]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for rel_path, remembered in self.folders.items():
            if rel_path:
                parent, _, name = rel_path.rpartition("/")
                self._children.setdefault(parent, []).append((name, remembered.via_link))

    def keep(self, visit: FolderVisit) -> FolderVisit | None:
        remembered = self.folders.get(visit.rel_path)
        if remembered is None or visit.rel_path in self.dirty:
            return None
        if not listing_stands(remembered, visit, now_ns=self.now_ns, settle_ns=self.settle_ns):
            return None
        return visit._replace(listed_at_ns=remembered.listed_at_ns)

    def subfolders(self, rel_path: str) -> list[tuple[str, bool]]:
        return self._children.get(rel_path, [])


@dataclass(frozen=True)
class Missed:
    """What a full pass found that the memory did not have, in folders an incremental pass would
    not have listed: files made, gone or changed (size, mtime or ctime) there."""

    count: int = 0
    examples: tuple[str, ...] = ()  # the first few paths, for the log


MISSED_EXAMPLES = 5


def missed_changes(
    remembered: Mapping[str, Sequence[SourceFile]], walked: Iterable[SourceFile], folders: Collection[str]
) -> Missed:
    """Given the remembered files of some folders, the files a full walk found and those folders
    (the ones an incremental pass would have kept), return what differs there. Pure."""
    before = {source.rel_path: source[:4] for folder in folders for source in remembered.get(folder, ())}
    differing: list[str] = []
    for source in walked:
        if source.rel_path.rpartition("/")[0] not in folders:
            continue
        if before.pop(source.rel_path, None) != source[:4]:
            differing.append(source.rel_path)
    differing.extend(before)  # remembered, and gone
    differing.sort()
    return Missed(len(differing), tuple(differing[:MISSED_EXAMPLES]))


@dataclass
class _Checking:
    """A memory that keeps nothing (every folder is listed) but notes which it would have kept."""

    memory: FolderMemory
    would_keep: set[str] = field(default_factory=set)

    def keep(self, visit: FolderVisit) -> FolderVisit | None:
        if self.memory.keep(visit) is not None:
            self.would_keep.add(visit.rel_path)
        return None

    def subfolders(self, rel_path: str) -> list[tuple[str, bool]]:
        return []


class ScanMemory(Protocol):
    """What the walks read of the store (`agent.store.protocol.Store` has it)."""

    def load_folders(self, library: str) -> dict[str, RememberedFolder]: ...
    def load_folder_files(self, library: str, folders: Sequence[str]) -> dict[str, list[SourceFile]]: ...
    def load_archive_folders(self) -> dict[str, RememberedFolder]: ...
    def load_archive_files(self, folders: Sequence[str]) -> dict[str, list[str]]: ...


def full_pass_due(
    last: tuple[float, int] | None, *, now: float, interval_seconds: float, config_generation: int
) -> bool:
    """Given when the last full pass of a library (or the archive) was recorded (a monotonic clock,
    and the config generation it ran under; None: none since the agent started), return whether
    this pass must be full: the first after start, the first after a config change (its
    extensions or source may be others), and every `scan.full_interval`. Pure."""
    if last is None:
        return True
    at, generation = last
    return generation != config_generation or now - at >= interval_seconds


def walk_changed(
    library: Library,
    folders: Mapping[str, RememberedFolder],
    *,
    excluded: Collection[Path] = (),
    now_ns: int,
    dirty: Collection[str] = (),
) -> LibraryWalk:
    """Walk a library listing only the folders whose remembered listing (`folders`, the store's
    `load_folders`) does not stand, and `dirty` ones (relative to the source, "" the top). No
    store is used: the kept folders' files are added after, by `with_kept_files`."""
    memory = FolderMemory(folders, now_ns, _settle_ns(library), dirty)
    return walk_library(library, excluded=excluded, memory=memory, now_ns=now_ns)


def walk_in_full(
    library: Library, folders: Mapping[str, RememberedFolder], *, excluded: Collection[Path] = (), now_ns: int
) -> tuple[LibraryWalk, frozenset[str]]:
    """Walk a library in full; also return the folders an incremental pass would have kept, where
    what the walk found may differ from the memory (`missed_changes`). No store is used."""
    checking = _Checking(FolderMemory(folders, now_ns, _settle_ns(library)))
    walk = walk_library(library, excluded=excluded, memory=checking, now_ns=now_ns)
    return walk, frozenset(checking.would_keep if walk.observation.status is SourceStatus.OK else ())


def scan_incrementally(
    library: Library,
    memory: ScanMemory,
    *,
    excluded: Collection[Path] = (),
    now_ns: int,
    dirty: Collection[str] = (),
    full: bool = False,
) -> LibraryWalk:
    """`walk_changed` (or in full, when `full`) with the kept folders' files read from the store:
    for callers on the store's thread."""
    if full:
        return walk_library(library, excluded=excluded, now_ns=now_ns)
    folders = memory.load_folders(library.name)
    walk = walk_changed(library, folders, excluded=excluded, now_ns=now_ns, dirty=dirty)
    return with_remembered_files(walk, library, memory, folders)


def with_remembered_files(
    walk: LibraryWalk, library: Library, memory: ScanMemory, folders: Mapping[str, RememberedFolder]
) -> LibraryWalk:
    """Return the walk with its kept folders' files read from the store."""
    if not walk.kept:
        return walk
    remembered = memory.load_folder_files(library.name, walk.kept)
    counts = {rel_path: folders[rel_path].file_count for rel_path in walk.kept if rel_path in folders}
    return with_kept_files(walk, library, remembered, file_counts=counts)


def scan_in_full(
    library: Library, memory: ScanMemory, *, excluded: Collection[Path] = (), now_ns: int
) -> tuple[LibraryWalk, Missed]:
    """Walk a library in full, and say what it found that an incremental pass would have missed
    (see `Missed`): the memory is read for the folders it would have kept, once per full pass."""
    walk, would_keep = walk_in_full(library, memory.load_folders(library.name), excluded=excluded, now_ns=now_ns)
    return walk, missed_in(walk, memory, library.name, would_keep)


MISSED_PAGE = 100  # folders whose remembered files are compared at once


def missed_in(walk: LibraryWalk, memory: ScanMemory, library: str, would_keep: Collection[str]) -> Missed:
    """Return what a full walk found that differs from the memory in the folders it would have kept."""
    return combined(missed_pages(walk, memory, library, would_keep))


def missed_pages(walk: LibraryWalk, memory: ScanMemory, library: str, would_keep: Collection[str]) -> Iterator[Missed]:
    """`missed_in` a page of folders at a time, reading the memory of each page only (on a full pass
    nearly every folder is one it would have kept): for a caller on an event loop to give it turns."""
    if not would_keep:
        return
    kept = set(would_keep)
    walked: dict[str, list[SourceFile]] = {}
    for source in walk.observation.files:
        folder = source.rel_path.rpartition("/")[0]
        if folder in kept:
            walked.setdefault(folder, []).append(source)
    folders = sorted(kept)
    for start in range(0, len(folders), MISSED_PAGE):
        page = folders[start : start + MISSED_PAGE]
        yield missed_changes(
            memory.load_folder_files(library, page), [source for folder in page for source in walked.get(folder, ())],
            set(page),
        )  # fmt: skip


def combined(pages: Iterable[Missed]) -> Missed:
    """Return the pages' Missed as one: their counts summed, the first examples by path."""
    count = 0
    examples: list[str] = []
    for page in pages:
        count += page.count
        examples.extend(page.examples)
    return Missed(count, tuple(sorted(examples)[:MISSED_EXAMPLES]))


def _settle_ns(library: Library) -> int:
    return int(library.stable_after.total_seconds() * NS_PER_SECOND)


def what_to_record(
    walk: LibraryWalk, files: Iterable[SourceFile]
) -> tuple[dict[str, list[SourceFile]], dict[str, tuple[int, int, str]]]:
    """Given a walk and the files of its observation (with the fingerprints the pass read), return
    the files of the folders it listed (those it can remember), by folder, and the fingerprints
    known of the other files: what `Store.record_walk` writes."""
    rememberable = {visit.rel_path for visit in walk.folders}
    listed: dict[str, list[SourceFile]] = {folder: [] for folder in walk.listed if folder in rememberable}
    fingerprints = {}
    for source in files:
        folder = source.rel_path.rpartition("/")[0]
        if folder in listed:
            listed[folder].append(source)
        elif source.fingerprint is not None:
            fingerprints[source.rel_path] = (source.size, source.mtime_ns, source.fingerprint)
    return listed, fingerprints
