"""The archive's walk as a pass makes it: only the archive folders whose remembered listing no
longer stands are listed, the names in the others come from the scan memory. The rules are the
sources' (`agent.incremental_scan.listing_stands`), with nothing settling: an output needs no
stability, and hb2r's own publishing renames into a folder, which moves its mtime."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from agent.archive_walk import ArchiveWalk, walk_archive, with_kept_names
from agent.config.models import Config
from agent.domain import FolderVisit, RememberedFolder
from agent.incremental_scan import ScanMemory, listing_stands


@dataclass
class ArchiveFolderMemory:
    """The remembered archive folders as an archive walk reads them (`agent.archive_walk.ArchiveMemory`)."""

    folders: Mapping[str, RememberedFolder]
    now_ns: int
    _children: dict[str, list[str]] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for rel_path in self.folders:
            parent, slash, name = rel_path.rpartition("/")
            if slash:
                self._children.setdefault(parent, []).append(name)

    def keep(self, visit: FolderVisit) -> FolderVisit | None:
        remembered = self.folders.get(visit.rel_path)
        if remembered is None or not listing_stands(remembered, visit, now_ns=self.now_ns, settle_ns=0):
            return None
        return visit._replace(listed_at_ns=remembered.listed_at_ns)

    def subfolders(self, rel_path: str) -> list[str]:
        return self._children.get(rel_path, [])


def walk_archive_changed(
    config: Config,
    folders: Mapping[str, RememberedFolder],
    *,
    recorded_folders: Collection[str] = (),
    now_ns: int,
    full: bool = False,
) -> ArchiveWalk:
    """Walk the archive's output folders listing only those whose remembered listing (`folders`,
    the store's `load_archive_folders`) does not stand, all of them when `full`. No store is
    used: the kept folders' names are added after, by `with_remembered_names`."""
    memory = None if full else ArchiveFolderMemory(folders, now_ns)
    return walk_archive(config, recorded_folders=recorded_folders, memory=memory, now_ns=now_ns)


def with_remembered_names(
    walk: ArchiveWalk, config: Config, memory: ScanMemory, folders: Mapping[str, RememberedFolder]
) -> ArchiveWalk:
    """Return the archive walk with its kept folders' names read from the store."""
    if not walk.kept:
        return walk
    counts = {rel_path: folders[rel_path].file_count for rel_path in walk.kept if rel_path in folders}
    return with_kept_names(walk, config, memory.load_archive_files(walk.kept), file_counts=counts)


def scan_archive_incrementally(
    config: Config,
    memory: ScanMemory,
    *,
    recorded_folders: Collection[str] = (),
    now_ns: int,
    full: bool = False,
) -> ArchiveWalk:
    """`walk_archive_changed` with the kept folders' names read from the store."""
    folders = {} if full else memory.load_archive_folders()
    walk = walk_archive_changed(config, folders, recorded_folders=recorded_folders, now_ns=now_ns, full=full)
    return with_remembered_names(walk, config, memory, folders)
