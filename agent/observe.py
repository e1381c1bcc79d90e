"""Gather the Observation the planner needs: the edge where plan() meets the disk.

Fingerprints are computed here only for the files `fingerprints_needed()` names, and taken
from the scan memory when a file's size and mtime still match what was fingerprinted.
HandBrakeCLI is asked its version (part of a preset's identity) only when the ledger holds
something to compare with, so planning a fresh library does not pay for its start-up.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.archive_walk import ArchiveWalk
from agent.config.models import Config, Library
from agent.domain import Ledger, LibraryObservation, Observation, RememberedFolder, SeenFile, SourceFile
from agent.handbrake.probe import HandBrakeUnavailable, handbrake_version
from agent.identity import preset_identity
from agent.incremental_archive import walk_archive_changed
from agent.incremental_scan import (
    Missed,
    walk_changed,
    walk_in_full,
)
from agent.plan import fingerprints_needed
from agent.plan_from_store import FillFingerprints
from agent.scan import LibraryWalk, fingerprint, scan_archive, scan_library


def observe(
    config: Config,
    ledger: Ledger,
    *,
    now_ns: int,
    warn: Callable[[str], None] = lambda message: None,
    preset_hashes: Mapping[str, str] | None = None,
) -> Observation:
    """Return what the watched folders and the archive hold now, with the fingerprints the plan needs.

    `preset_hashes` are used as given when the caller knows them (the agent computes them
    once at start); otherwise they are computed when the ledger has something to compare.
    """
    excluded = (config.paths.archive, config.paths.state_dir)
    libraries = {library.name: scan_library(library, excluded=excluded) for library in config.libraries}
    observation = Observation(
        libraries=libraries,
        archive=scan_archive(config, recorded_folders=_recorded_folders(config, ledger)),
        preset_hashes=preset_hashes if preset_hashes is not None else _lazy_preset_hashes(config, ledger, warn=warn),
    )
    return with_fingerprints(
        config, observation, fingerprints_needed(config, observation, ledger, now_ns=now_ns), ledger
    )


@dataclass(frozen=True)
class PassWalk:
    """What one agent pass walked (`walk_for_pass`), and what to remember of it."""

    libraries: Mapping[str, LibraryWalk]
    archive: ArchiveWalk
    full: frozenset[str]  # the libraries walked in full
    would_keep: Mapping[str, frozenset[str]]  # by library walked in full: folders a pass would have kept
    seconds: Mapping[str, float]  # how long each library's walk took
    full_archive: bool = False  # whether the archive was walked in full
    # by library walked in full: what its walk found that the memory missed (filled by the engine)
    missed: Mapping[str, Missed] = dataclasses.field(default_factory=dict)

    def observation(self, preset_hashes: Mapping[str, str]) -> Observation:
        return Observation(
            libraries={name: walk.observation for name, walk in self.libraries.items()},
            archive=self.archive.observation,
            preset_hashes=preset_hashes,
        )


def walk_for_pass(
    config: Config,
    *,
    recorded_folders: Collection[str],
    folders: Mapping[str, Mapping[str, RememberedFolder]],
    archive_folders: Mapping[str, RememberedFolder],
    now_ns: int,
    full: Collection[str],
    full_archive: bool,
    dirty: Mapping[str, Collection[str]],
) -> PassWalk:
    """Walk every library and the archive: those in `full` (and the archive if `full_archive`)
    in full, the others listing only the folders whose remembered listing (`folders`, by library;
    `archive_folders`) does not stand (`agent.incremental_scan`); `recorded_folders`: the archive
    folders the ledger's outputs are in. Uses no store, so it may run in a thread; the kept
    folders' files stay in the scan memory, read a few folders at a time by whoever plans them."""
    excluded = (config.paths.archive, config.paths.state_dir)
    walks: dict[str, LibraryWalk] = {}
    would_keep: dict[str, frozenset[str]] = {}
    seconds: dict[str, float] = {}
    for library in config.libraries:
        started = time.perf_counter()
        remembered = folders.get(library.name, {})
        if library.name in full:
            walks[library.name], would_keep[library.name] = walk_in_full(
                library, remembered, excluded=excluded, now_ns=now_ns
            )
        else:
            walks[library.name] = walk_changed(
                library, remembered, excluded=excluded, now_ns=now_ns, dirty=dirty.get(library.name, ())
            )
        seconds[library.name] = time.perf_counter() - started
    archive = walk_archive_changed(
        config,
        archive_folders,
        recorded_folders=set(recorded_folders) - {library.output for library in config.libraries},
        now_ns=now_ns,
        full=full_archive,
    )
    return PassWalk(walks, archive, frozenset(full), would_keep, seconds, full_archive)


def with_fingerprints(
    config: Config, observation: Observation, needed: Collection[tuple[str, str]], ledger: Ledger
) -> Observation:
    """Return the observation with fingerprints for the (library, path) pairs in `needed`."""
    if not needed:
        return observation
    wanted = {name for name, _ in needed}
    filled = {
        name: _with_fingerprints(config, observed, needed, ledger) if name in wanted else observed
        for name, observed in observation.libraries.items()
    }
    return dataclasses.replace(observation, libraries=filled)


def _lazy_preset_hashes(config: Config, ledger: Ledger, *, warn: Callable[[str], None]) -> dict[str, str]:
    return preset_hashes(config, warn=warn) if ledger.entries else {}


def _with_fingerprints(
    config: Config, observed: LibraryObservation, needed: Collection[tuple[str, str]], ledger: Ledger
) -> LibraryObservation:
    library = next(library for library in config.libraries if library.name == observed.library)
    files: list[SourceFile] = []
    for source in observed.files:
        if (observed.library, source.rel_path) in needed:
            source = source._replace(
                fingerprint=_fingerprint(library.source / source.rel_path, source, ledger, observed.library)
            )
        files.append(source)
    return dataclasses.replace(observed, files=tuple(files))


def fingerprints_from_disk(library: Library) -> FillFingerprints:
    """Return how `agent.plan_from_store` fills the fingerprints a batch's plan needs: from the
    scan memory while a file's size and mtime hold, else read from the file (None if it cannot be)."""

    def fill(files: Sequence[SourceFile], needed: set[str], seen: dict[str, SeenFile]) -> list[SourceFile]:
        return [
            source._replace(
                fingerprint=fingerprint_of(library.source / source.rel_path, source, seen.get(source.rel_path))
            )
            if source.rel_path in needed
            else source
            for source in files
        ]

    return fill


def _fingerprint(path: Path, source: SourceFile, ledger: Ledger, library: str) -> str | None:
    return fingerprint_of(path, source, ledger.seen.get((library, source.rel_path)))


def fingerprint_of(path: Path, source: SourceFile, seen: SeenFile | None) -> str | None:
    """Return the file's fingerprint: the scan memory's while size and mtime hold, else read (None if it cannot be)."""
    if seen is not None and seen.fingerprint and (seen.size, seen.mtime_ns) == (source.size, source.mtime_ns):
        return seen.fingerprint
    try:
        return fingerprint(path, size=source.size)
    except OSError:
        return None  # vanished or unreadable since the scan; the next pass sees it again


def preset_hashes(config: Config, *, warn: Callable[[str], None]) -> dict[str, str]:
    """Return each preset's identity hash; empty if HandBrakeCLI cannot say its version."""
    try:
        version = handbrake_version(config.handbrake.binary)
    except HandBrakeUnavailable as error:
        warn(f"{error}; preset changes cannot be detected")
        return {}
    hashes = {}
    for name, preset in config.presets.items():
        try:
            content = preset.import_file.read_bytes() if preset.import_file is not None else None
        except OSError as error:
            warn(f"preset {name!r}: cannot read {preset.import_file}: {error.strerror}")
            continue
        hashes[name] = preset_identity(preset, import_file_content=content, handbrake_version=version)
    return hashes


def _recorded_folders(config: Config, ledger: Ledger) -> set[str]:
    """Return the output folders of recorded transcodes, when the config no longer names them."""
    configured = {library.output for library in config.libraries}
    recorded = {entry.output_path.split("/", 1)[0] for entry in ledger.entries}
    return recorded - configured
