"""The walk of the archive's output folders: which outputs exist (names only), in full or incrementally.

Why its own walk: the planner must know which outputs exist (missing -> encode again, there
but unrecorded -> adopt, renamed -> move), and a full walk of the archive each pass costs as
much as the sources'. As for the sources (`agent.incremental_scan`), a folder whose identity,
mtime and ctime have not moved since a listing that was not racy holds the names it held,
which the scan memory keeps (`archive_folders`, `archive_files`); only the others are listed.
Publishing an output creates it under a temporary name and renames it into its folder, which
moves that folder's mtime: hb2r's own writes are seen like anyone's.

What is listed, as before: every name under each output folder (and the output folders the
ledger still points into), hidden names (`.hb2r-partial`, Resilio's `.sync`) left out; links
are listed as names, not followed. A folder whose listing failed or held a name that is not
UTF-8 is listed every pass (such a name cannot be stored).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.config.models import Config
from agent.descriptors import OutOfDescriptors, is_shortage
from agent.domain import ArchiveObservation, FolderVisit


class ArchiveMemory(Protocol):
    """What an archive walk reads of the scan memory (`agent.incremental_archive.ArchiveFolderMemory`):
    the remembered folders only, loaded before the walk."""

    def keep(self, visit: FolderVisit) -> FolderVisit | None:
        """The folder as remembered if its remembered listing stands, else None (list it)."""
        ...

    def subfolders(self, rel_path: str) -> list[str]: ...


@dataclass(frozen=True)
class ArchiveWalk:
    """An archive walk's observation; the folders it reached, the outputs in each it listed, and
    the folders it kept (their names are the memory's, not in the observation until `with_kept_names`)."""

    observation: ArchiveObservation
    folders: tuple[FolderVisit, ...] = ()
    listed: dict[str, list[str]] | None = None
    kept: tuple[str, ...] = ()


def walk_archive(
    config: Config, *, recorded_folders: Iterable[str] = (), memory: ArchiveMemory | None = None, now_ns: int = 0
) -> ArchiveWalk:
    """Return which files exist in the archive (names only) under each library's output folder.

    `recorded_folders` are output folders the ledger still points into: after an output
    folder is renamed in the config, the old outputs must be seen to be moved, not re-encoded.
    With `memory`, a folder whose remembered listing stands is not listed (see the module docstring).
    """
    archive = str(config.paths.archive)
    if not os.path.isdir(archive):
        return ArchiveWalk(ArchiveObservation(available=False, detail=f"{archive} is missing (not mounted?)"))
    outputs: list[str] = []
    present: set[str] = set()
    visits: list[FolderVisit] = []
    listed: dict[str, list[str]] = {}
    kept: list[str] = []
    for output in dict.fromkeys([*(library.output for library in config.libraries), *recorded_folders]):
        top = os.path.join(archive, output)
        try:
            info = os.stat(top)
        except OSError as error:
            _raise_if_shortage(error, top)
            continue
        if not os.path.isdir(top):
            continue
        present.add(output)
        folders = [(top, output, _visit(output, info, now_ns=now_ns))]
        while folders:
            folder, rel_folder, visit = folders.pop()
            remembered = memory.keep(visit) if memory is not None else None
            if remembered is not None:
                assert memory is not None  # noqa: S101 - for mypy
                visits.append(remembered)
                kept.append(rel_folder)
                for child in memory.subfolders(rel_folder):
                    path = os.path.join(folder, child)
                    try:
                        child_info = os.lstat(path)
                    except OSError as error:
                        _raise_if_shortage(error, path)
                        continue
                    if stat.S_ISDIR(child_info.st_mode):
                        folders.append(
                            (path, f"{rel_folder}/{child}", _visit(f"{rel_folder}/{child}", child_info, now_ns=now_ns))
                        )
                continue
            names, subfolders, problem = list_archive_folder(folder, rel_folder)
            outputs.extend(names)
            if _is_text(rel_folder):
                visits.append(visit._replace(problems=problem))
                if not problem:
                    listed[rel_folder] = names
            for child, child_info in subfolders:
                rel_child = f"{rel_folder}/{child}"
                folders.append((os.path.join(folder, child), rel_child, _visit(rel_child, child_info, now_ns=now_ns)))
    return ArchiveWalk(
        ArchiveObservation(available=True, outputs=frozenset(outputs), output_folders=frozenset(present)),
        folders=tuple(visits),
        listed=listed,
        kept=tuple(kept),
    )


def archive_presence(config: Config, folders: Iterable[str]) -> ArchiveObservation:
    """Return whether the archive is there and which of these output folders it holds, as
    `walk_archive` finds them, without walking them (`hb2r plan` looks files up on demand)."""
    archive = str(config.paths.archive)
    if not os.path.isdir(archive):
        return ArchiveObservation(available=False, detail=f"{archive} is missing (not mounted?)")
    present = {folder for folder in folders if os.path.isdir(os.path.join(archive, folder))}
    return ArchiveObservation(available=True, output_folders=frozenset(present))


def with_kept_names(
    walk: ArchiveWalk, config: Config, remembered: Mapping[str, Sequence[str]], *, file_counts: Mapping[str, int]
) -> ArchiveWalk:
    """Return the walk with the remembered names of the folders it kept; a kept folder the memory
    holds names of (`file_counts`) but cannot give back is listed now."""
    if not walk.kept:
        return walk
    outputs = set(walk.observation.outputs)
    for rel_folder in walk.kept:
        found = remembered.get(rel_folder)
        if found is None and file_counts.get(rel_folder):
            found, _, _ = list_archive_folder(os.path.join(config.paths.archive, rel_folder), rel_folder)
        outputs.update(found or ())
    observation = dataclasses.replace(walk.observation, outputs=frozenset(outputs))
    return dataclasses.replace(walk, observation=observation, kept=())


def list_archive_folder(folder: str, rel_folder: str) -> tuple[list[str], list[tuple[str, os.stat_result]], bool]:
    """Return the names in one folder (archive-relative), its subfolders with their lstat, and
    whether its listing had a problem (failed, or a name that is not UTF-8)."""
    names: list[str] = []
    subfolders: list[tuple[str, os.stat_result]] = []
    problem = False
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    try:
                        subfolders.append((entry.name, entry.stat(follow_symlinks=False)))
                    except OSError:
                        continue
                    problem = problem or not _is_text(entry.name)
                else:
                    names.append(f"{rel_folder}/{entry.name}")
                    problem = problem or not _is_text(entry.name)
    except OSError as error:
        _raise_if_shortage(error, folder)
        return names, subfolders, True
    return names, subfolders, problem


def _visit(rel_path: str, info: os.stat_result, *, now_ns: int) -> FolderVisit:
    return FolderVisit(rel_path, f"{info.st_dev}:{info.st_ino}", info.st_mtime_ns, info.st_ctime_ns, False, now_ns)


def _raise_if_shortage(error: OSError, path: str) -> None:
    if is_shortage(error):
        raise OutOfDescriptors(f"cannot open {path}: {error.strerror}") from error


def _is_text(name: str) -> bool:
    if name.isascii():
        return True
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
