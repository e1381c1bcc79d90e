"""Observe the watched folders and the archive: names, sizes, times; fingerprints on demand.

The walk is the hot path of every pass (a library can hold 100,000 files), so it does
one `os.scandir` per folder and one stat per candidate file, and nothing more. Sources
are only ever opened read-only (with O_NOATIME where allowed) when a fingerprint is needed.

What is skipped, and why:
- hidden names (`.*`): Resilio's `.sync`, rsync's in-flight `.name.XXXXXX`, hb2r's own
  `.hb2r-partial`;
- files still arriving under a temporary name: `*.part`, `*.partial`, `*.tmp`, `*.temp`,
  `*.crdownload`, `*.!sync` (Resilio), `*.!qb` (qBittorrent), and `~*`;
- extensions not configured for the library (compared case-insensitively);
- folders already visited (symlink loops) and the archive and state folder, if a symlink
  leads there (hb2r must never encode its own output).
A name that is not valid UTF-8 cannot be stored, shown or served reliably: it is reported
for the operator to rename, not encoded. An unreadable subfolder is reported, and the
planner does not take the files it hides for deleted.

Running out of file descriptors (EMFILE, ENFILE) says nothing about a folder: the scan then
raises OutOfDescriptors and the whole pass fails, to be retried, rather than report a library
unreadable (which pauses it), a subfolder unreadable or archive outputs missing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.archive_walk import walk_archive
from agent.config.models import Config, Library
from agent.descriptors import OutOfDescriptors, is_shortage
from agent.domain import ArchiveObservation, FolderVisit, LibraryObservation, ScanProblem, SourceFile, SourceStatus

FINGERPRINT_BLOCK = 1024 * 1024
NOT_UTF8 = "file name is not valid UTF-8; rename it to have it encoded"


def scan_library(library: Library, *, excluded: Iterable[Path] = ()) -> LibraryObservation:
    """Given a library, return what its source folder holds now (a full walk). Never raises for I/O."""
    return walk_library(library, excluded=excluded).observation


class WalkMemory(Protocol):
    """What a walk reads of the scan memory (`agent.incremental_scan.FolderMemory` has it): the
    remembered folders only, loaded before the walk (the store is not used from the walk's thread)."""

    def keep(self, visit: FolderVisit) -> FolderVisit | None:
        """Given a folder as its stat says it is now, return it as remembered if its remembered
        listing stands (it is not listed), or None if it must be listed."""
        ...

    def subfolders(self, rel_path: str) -> list[tuple[str, bool]]:
        """The remembered subfolders of a remembered folder: (name, reached through a symlink)."""
        ...


@dataclass(frozen=True)
class LibraryWalk:
    """A walk's observation, the folders it reached (to remember), those it listed, and those it
    kept: their files are the scan memory's, not in the observation until `with_kept_files`."""

    observation: LibraryObservation
    folders: tuple[FolderVisit, ...] = ()
    listed: frozenset[str] = frozenset()
    kept: tuple[str, ...] = ()


def walk_library(
    library: Library, *, excluded: Iterable[Path] = (), memory: WalkMemory | None = None, now_ns: int = 0
) -> LibraryWalk:
    """Given a library, return what its source folder holds now; never raises for I/O.

    Without `memory`, every folder is listed (a full walk). With it, a folder the memory keeps
    is not listed: its subfolders are taken as remembered, and its files are left for
    `with_kept_files` to add from the scan memory (agent.incremental_scan).
    Both descend the same way (subfolders by name, a folder met twice kept where met first),
    so they agree on the same tree. `now_ns` is when the listings happen (their `listed_at_ns`).
    """
    walking = FolderWalk(library, excluded=excluded, memory=memory, now_ns=now_ns)
    files: list[SourceFile] = []
    for _, found in walking.folders():
        files.extend(found)
    return walking.result(files)


class FolderWalk:
    """One walk of a library, folder by folder (`folders`), for a caller that handles each
    folder's files as they come instead of holding the library's (`hb2r plan`); what else the
    walk found (status, problems, unreadable and visited folders) is kept for `result`."""

    def __init__(
        self, library: Library, *, excluded: Iterable[Path] = (), memory: WalkMemory | None = None, now_ns: int = 0
    ) -> None:
        self.library = library
        self.excluded = tuple(excluded)
        self.memory = memory
        self.now_ns = now_ns
        self.status = SourceStatus.OK
        self.detail = ""
        self.problems: list[ScanProblem] = []
        self.unreadable: list[str] = []
        self.visits: list[FolderVisit] = []
        self.listed: set[str] = set()
        self.kept: list[str] = []  # folders taken from memory

    def result(self, files: Sequence[SourceFile] = ()) -> LibraryWalk:
        """Return the walk, once `folders` is done, with these files (all that it yielded, or none)."""
        name = self.library.name
        if self.status is not SourceStatus.OK:
            return LibraryWalk(LibraryObservation(name, self.status, detail=self.detail))
        return LibraryWalk(
            LibraryObservation(
                name,
                SourceStatus.OK,
                files=tuple(files),
                problems=tuple(self.problems),
                unreadable_dirs=tuple(self.unreadable),
            ),
            folders=tuple(self.visits),
            listed=frozenset(self.listed),
            kept=tuple(self.kept),
        )

    def folders(self) -> Iterator[tuple[str, list[SourceFile]]]:
        """Yield each listed folder with its candidate files, depth first with subfolders by
        name; a source folder that is missing or unreadable yields nothing and sets `status`."""
        root = str(self.library.source)
        try:
            root_stat = os.stat(root)
        except FileNotFoundError:
            self.status, self.detail = SourceStatus.MISSING, "no such folder"
            return
        except OSError as error:
            _raise_if_shortage(error, root)
            self.status, self.detail = SourceStatus.UNREADABLE, error.strerror or str(error)
            return
        if not stat.S_ISDIR(root_stat.st_mode):
            self.status, self.detail = SourceStatus.MISSING, "not a folder"
            return
        if not os.access(root, os.R_OK | os.X_OK):
            self.status, self.detail = SourceStatus.UNREADABLE, "permission denied"
            return

        memory, now_ns = self.memory, self.now_ns
        extensions = frozenset(self.library.extensions)
        visited = {(root_stat.st_dev, root_stat.st_ino)} | _identities(self.excluded)
        # A link may lead into a subfolder of the archive, whose identity is not in `visited`.
        excluded_prefixes = tuple(os.path.join(os.path.realpath(path), "") for path in self.excluded)
        problems, visits = self.problems, self.visits
        folders = [(root, "", _visit("", root_stat, via_link=False, now_ns=now_ns))]
        while folders:
            folder, prefix, visit = folders.pop()
            rel_folder = prefix[:-1]
            candidates: list[tuple[str, str, os.stat_result, bool]] = []  # subfolders: name, path, stat, via link
            remembered = memory.keep(visit) if memory is not None else None
            files: list[SourceFile] = []
            if remembered is not None:
                assert memory is not None  # noqa: S101 - for mypy
                visit = remembered
                self.kept.append(rel_folder)
                for child, via_link in memory.subfolders(rel_folder):
                    path = os.path.join(folder, child)
                    try:
                        info = os.stat(path)
                    except OSError as error:
                        _raise_if_shortage(error, path)
                        continue  # gone since it was remembered, as a listing would not find it
                    if stat.S_ISDIR(info.st_mode):
                        candidates.append((child, path, info, via_link))
            else:
                self.listed.add(rel_folder)
                listing = _list_folder(folder, prefix, extensions=extensions, files=files, problems=problems)
                if isinstance(listing, OSError):
                    if not prefix:  # the source folder itself
                        self.status, self.detail = SourceStatus.UNREADABLE, listing.strerror or str(listing)
                        return
                    self.unreadable.append(rel_folder)
                    problems.append(ScanProblem(_printable(rel_folder), f"folder unreadable: {listing.strerror}"))
                    candidates, visit = [], visit._replace(problems=True)
                else:
                    candidates, had_problems = listing
                    # A subfolder whose name is not UTF-8 cannot be remembered: list its parent every pass.
                    had_problems = had_problems or not all(_is_text(child) for child, *_ in candidates)
                    visit = visit._replace(problems=had_problems)
            # A name that is not UTF-8 cannot be stored: such a folder is listed every pass.
            if _is_text(rel_folder):
                visits.append(visit)
            subfolders = []
            for child, path, info, via_link in sorted(candidates, key=_by_name):
                identity = (info.st_dev, info.st_ino)
                if identity in visited or (via_link and _leads_into(path, excluded_prefixes)):
                    continue
                visited.add(identity)
                child_prefix = prefix + child + "/"
                subfolders.append(
                    (path, child_prefix, _visit(child_prefix[:-1], info, via_link=via_link, now_ns=now_ns))
                )
            folders.extend(reversed(subfolders))  # popped in name order
            if files:
                yield rel_folder, files


def with_kept_files(
    walk: LibraryWalk,
    library: Library,
    remembered: Mapping[str, Sequence[SourceFile]],
    *,
    file_counts: Mapping[str, int],
) -> LibraryWalk:
    """Return the walk with the remembered files of the folders it kept (`remembered`, by folder);
    a kept folder the memory holds files of (`file_counts`) but cannot give back is listed now."""
    if not walk.kept:
        return walk
    files = list(walk.observation.files)
    problems = list(walk.observation.problems)
    extensions = frozenset(library.extensions)
    for rel_folder in walk.kept:
        found = remembered.get(rel_folder)
        if found is not None or not file_counts.get(rel_folder):
            files.extend(found or ())
            continue
        prefix = rel_folder + "/" if rel_folder else ""
        _list_folder(os.path.join(library.source, rel_folder), prefix, extensions=extensions, files=files,
                     problems=problems)  # fmt: skip
    observation = dataclasses.replace(walk.observation, files=tuple(files), problems=tuple(problems))
    return dataclasses.replace(walk, observation=observation, kept=())


def _list_folder(
    folder: str,
    prefix: str,
    *,
    extensions: frozenset[str],
    files: list[SourceFile],
    problems: list[ScanProblem],
) -> tuple[list[tuple[str, str, os.stat_result, bool]], bool] | OSError:
    """List one folder: add its candidate files to `files` and its bad names to `problems`; return
    its subfolders (name, path, stat, via link) and whether it had a problem, or the OSError that
    kept it from being listed."""
    try:
        entries = os.scandir(folder)
    except OSError as error:
        _raise_if_shortage(error, folder)
        return error
    subfolders: list[tuple[str, str, os.stat_result, bool]] = []
    had_problems = False
    add_file, new_tuple, is_regular, is_folder = files.append, tuple.__new__, stat.S_ISREG, stat.S_ISDIR
    with entries:
        for entry in entries:
            name = entry.name
            if name[0] == ".":
                continue
            # Most entries are videos: test the name first, so a file costs one stat and
            # no is_dir(). Partial suffixes (.part, .!sync, ...) cannot pass: the config
            # refuses them as extensions.
            dot = name.rfind(".")
            try:
                if dot > 0 and name[0] != "~" and name[dot:].lower() in extensions:
                    info = entry.stat()
                    if is_regular(info.st_mode):
                        rel_path = prefix + name
                        if rel_path.isascii() or _is_utf8(rel_path):
                            # tuple.__new__ is SourceFile(...) without its Python-level __new__:
                            # this line runs once per file of every library on every pass.
                            add_file(
                                new_tuple(
                                    SourceFile, (rel_path, info.st_size, info.st_mtime_ns, info.st_ctime_ns, None)
                                )
                            )
                        else:
                            problems.append(ScanProblem(_printable(rel_path), NOT_UTF8))
                            had_problems = True
                        continue
                    if not is_folder(info.st_mode):
                        continue
                elif entry.is_dir():
                    info = entry.stat()
                else:
                    continue
            except OSError:
                continue  # vanished between listing and stat, or a broken link
            subfolders.append((name, entry.path, info, entry.is_symlink()))
    return subfolders, had_problems


def _visit(rel_path: str, info: os.stat_result, *, via_link: bool, now_ns: int) -> FolderVisit:
    return FolderVisit(rel_path, f"{info.st_dev}:{info.st_ino}", info.st_mtime_ns, info.st_ctime_ns, via_link, now_ns)


def _by_name(candidate: tuple[str, str, os.stat_result, bool]) -> str:
    return candidate[0]


def scan_archive(config: Config, *, recorded_folders: Iterable[str] = ()) -> ArchiveObservation:
    """Return which files exist in the archive under each library's output folder (a full walk;
    see `agent.archive_walk`)."""
    return walk_archive(config, recorded_folders=recorded_folders).observation


def fingerprint(path: Path, *, size: int) -> str:
    """Given a file and its size, return size + blake2b of its first, middle and last MiB.

    Raise OSError if the file cannot be read, OutOfDescriptors if no file descriptor is left.
    """
    digest = hashlib.blake2b(digest_size=16)
    flags = os.O_RDONLY | getattr(os, "O_NOATIME", 0)
    try:
        try:
            descriptor = os.open(path, flags)
        except PermissionError:
            descriptor = os.open(path, os.O_RDONLY)  # O_NOATIME needs to own the file
    except OSError as error:
        _raise_if_shortage(error, path)
        raise
    with os.fdopen(descriptor, "rb") as handle:
        if size <= 3 * FINGERPRINT_BLOCK:
            digest.update(handle.read())
        else:
            for offset in (0, size // 2 - FINGERPRINT_BLOCK // 2, size - FINGERPRINT_BLOCK):
                handle.seek(offset)
                digest.update(handle.read(FINGERPRINT_BLOCK))
    return f"{size}:{digest.hexdigest()}"


def _raise_if_shortage(error: OSError, path: str | Path) -> None:
    """Raise OutOfDescriptors if error is EMFILE or ENFILE (see the module docstring)."""
    if is_shortage(error):
        raise OutOfDescriptors(f"cannot open {os.fspath(path)}: {error.strerror}") from error


def _identities(paths: Iterable[Path]) -> set[tuple[int, int]]:
    found = set()
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            continue
        found.add((info.st_dev, info.st_ino))
    return found


def _leads_into(link: str, prefixes: tuple[str, ...]) -> bool:
    return os.path.join(os.path.realpath(link), "").startswith(prefixes)


def _is_text(name: str) -> bool:
    return name.isascii() or _is_utf8(name)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    # os.fsencode restores the bytes the name really has, so `bad\xff.mkv`, not `bad\udcff.mkv`.
    return os.fsencode(text).decode("utf-8", "backslashreplace") if text else "."
