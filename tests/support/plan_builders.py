"""Builders for the planner's decision tables: configs, files on disk, ledger entries, and `_plan`, which
runs `plan()` three ways (the whole library, folder by folder, through the store) under the autouse
`planner` fixture, so every table row holds for each. Shared by tests/unit/test_plan*.py."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from agent.config.models import Config
from agent.domain import (
    Action,
    Adopt,
    ArchiveObservation,
    FolderVisit,
    Ledger,
    LedgerEntry,
    LibraryObservation,
    Observation,
    PauseLibrary,
    Plan,
    RenameOutput,
    ScanProblem,
    SeenFile,
    Skip,
    SourceFile,
    SourceStatus,
    Transcode,
    UserChange,
    UserChangeKind,
    UserRecord,
)
from agent.plan import library_context, plan, plan_in_folder_batches, plan_users
from agent.plan_from_store import by_folder, plan_library_from_store
from agent.store.sqlite import SqliteStore, open_store
from tests.support.store_pass import pause_from_store

NS = 1_000_000_000


NOW = 1_750_000_000 * NS


HOUR = 3600


MB = 1024 * 1024


TV_HASH = "tv-preset-v1"


MOVIES_HASH = "movies-preset-v1"


HASHES = {"tv": TV_HASH, "movies": MOVIES_HASH}


ADMIN_HASH = "$2b$12$" + "a" * 53


OTHER_HASH = "$2b$12$" + "b" * 53


def _library(name: str = "tv", **overrides: Any) -> dict[str, Any]:
    output = {"tv": "TV", "movies": "Movies"}.get(name, name.title())
    return {
        "name": name,
        "source": f"/src/{name}",
        "output": output,
        "preset": name if name in HASHES else "tv",
        "stable_after": "60s",
        **overrides,
    }


def _config(
    *libraries: dict[str, Any],
    tv_container: str = "mkv",
    max_vanish_percent: int = 50,
    users: Sequence[dict[str, str]] = (),
) -> Config:
    return Config.model_validate(
        {
            "version": 1,
            "paths": {"archive": "/archive", "state_dir": "/state"},
            "libraries": list(libraries) if libraries else [_library()],
            "presets": {
                "tv": {"handbrake": "Fast 1080p30", "container": tv_container},
                "movies": {"handbrake": "HQ 1080p30 Surround"},
            },
            "scan": {"max_vanish_percent": max_vanish_percent},
            "users": list(users),
        },
        context={"base_dir": "/"},
    )


CONFIG = _config()


def _file(
    rel_path: str,
    *,
    size: int = MB,
    age: float = HOUR,
    ctime_age: float | None = None,
    fingerprint: str | None = None,
) -> SourceFile:
    """A source file last modified `age` seconds before NOW (and changed, ctime, `ctime_age`)."""
    mtime_ns = NOW - int(age * NS)
    ctime_ns = NOW - int((age if ctime_age is None else ctime_age) * NS)
    return SourceFile(rel_path, size, mtime_ns, ctime_ns, fingerprint)


def _out(rel_path: str, *, folder: str = "TV", extension: str = ".mkv") -> str:
    return f"{folder}/{PurePosixPath(rel_path).with_suffix(extension)}"


def _done(
    source: SourceFile,
    *,
    library: str = "tv",
    output: str | None = None,
    fingerprint: str | None = None,
    preset_hash: str = TV_HASH,
) -> LedgerEntry:
    """The ledger entry hb2r writes once `source`, as it is, has been encoded."""
    return LedgerEntry(
        library=library,
        rel_path=source.rel_path,
        fingerprint=fingerprint or source.fingerprint or f"fp:{source.rel_path}",
        size=source.size,
        mtime_ns=source.mtime_ns,
        preset_hash=preset_hash,
        output_path=output or _out(source.rel_path),
    )


def _tv(
    *files: SourceFile,
    status: SourceStatus = SourceStatus.OK,
    problems: Sequence[ScanProblem] = (),
    unreadable_dirs: Sequence[str] = (),
) -> LibraryObservation:
    return LibraryObservation(
        "tv", status, files=tuple(files), problems=tuple(problems), unreadable_dirs=tuple(unreadable_dirs)
    )


def _disk(
    *files: SourceFile,
    outputs: Iterable[str] = (),
    folders: Iterable[str] = ("TV",),
    libraries: Mapping[str, LibraryObservation] | None = None,
    archive_available: bool = True,
    preset_hashes: Mapping[str, str] = HASHES,
    problems: Sequence[ScanProblem] = (),
    unreadable_dirs: Sequence[str] = (),
) -> Observation:
    """What a scan sees: the tv library's files (or `libraries`) and the archive's outputs."""
    observed = (
        libraries if libraries is not None else {"tv": _tv(*files, problems=problems, unreadable_dirs=unreadable_dirs)}
    )
    archive = ArchiveObservation(
        available=archive_available,
        outputs=frozenset(outputs),
        output_folders=frozenset(folders) if archive_available else frozenset(),
        detail="" if archive_available else "/archive is missing (not mounted?)",
    )
    return Observation(libraries=dict(observed), archive=archive, preset_hashes=dict(preset_hashes))


def _ledger(
    *entries: LedgerEntry,
    seen: Mapping[tuple[str, str], SeenFile] | None = None,
    file_counts: Mapping[str, int] | None = None,
    users: Sequence[UserRecord] = (),
) -> Ledger:
    return Ledger(
        entries=tuple(entries), seen=dict(seen or {}), file_counts=dict(file_counts or {}), users=tuple(users)
    )


def _plan_through_the_store(config: Config, observation: Observation, ledger: Ledger, *, now_ns: int) -> Plan:
    """Plan as a pass with bounded memory does: the pause from the store's counts, then this walk
    recorded, then batch by batch from the store."""
    with tempfile.TemporaryDirectory(prefix="hb2r-plan-") as folder:
        store = open_store(Path(folder))
        try:
            _remember(store, observation, ledger)
            actions: list[Action] = []
            configured = {library.name for library in config.libraries}
            archive = observation.archive
            for library in config.libraries:
                observed = observation.libraries.get(library.name) or LibraryObservation(
                    library.name, SourceStatus.MISSING, detail="not scanned"
                )
                context, _ = library_context(config, library, observation, ledger)
                reason = pause_from_store(
                    store, config=config, library=library, observed=observed, archive=archive, hidden=context.hidden
                )
                if reason is not None:
                    actions.append(PauseLibrary(library.name, reason))
                    continue
                store.record_scan(
                    library=library.name, files=observed.files, previous=ledger.seen, now_ns=now_ns, scanned_at="now"
                )
                actions.extend(
                    plan_library_from_store(
                        context, store, folders=by_folder(observed.files), configured=configured,
                        problems=observed.problems, now_ns=now_ns,
                    )
                )  # fmt: skip
            actions.extend(plan_users(config.users, ledger.users))
            return Plan(tuple(actions))
        finally:
            store.close()


def _remember(store: SqliteStore, observation: Observation, ledger: Ledger) -> None:
    """Write the row's facts as the last pass left them: the ledger, the scan memory and the
    breaker's baseline, the archive's names."""
    for entry in ledger.entries:
        store.record_output(entry, encoded_at="2024-05-01T12:00:00+00:00")
    store.database.executemany(
        "INSERT INTO seen_files (library, rel_path, folder, size, mtime_ns, fingerprint, changed_at_ns, ctime_ns)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (name, rel, rel.rpartition("/")[0], seen.size, seen.mtime_ns, seen.fingerprint, seen.changed_at_ns,
             seen.mtime_ns)
            for (name, rel), seen in ledger.seen.items()
        ],
    )  # fmt: skip
    store.database.executemany(
        "INSERT INTO library_scans (library, file_count, scanned_at) VALUES (?, ?, 'before')",
        list(ledger.file_counts.items()),
    )
    names: dict[str, list[str]] = {}
    for output in observation.archive.outputs:
        names.setdefault(output.rpartition("/")[0], []).append(output)
    visits = [FolderVisit(folder, "1:1", 1, 1, False, 1) for folder in names]
    store.record_archive(folders=visits, listed=names)


PLANNERS = {
    "whole-library": plan,
    "folder-by-folder": plan_in_folder_batches,
    "through-the-store": _plan_through_the_store,
}


_planner = [plan]


@pytest.fixture(params=list(PLANNERS), autouse=True)
def planner(request: pytest.FixtureRequest) -> str:
    """Run the test with the library decided whole, folder by folder, and through the store."""
    _planner[0] = PLANNERS[request.param]
    return str(request.param)


def _plan(config: Config, disk: Observation, ledger: Ledger) -> Plan:
    return _planner[0](config, disk, ledger, now_ns=NOW)


def _assert_actions(result: Plan, expected: Sequence[Action]) -> None:
    """Compare whole actions; for skips and pauses, `expected.reason` need only appear in the reason."""
    actual = list(result.actions)
    for index, (got, want) in enumerate(zip(actual, expected, strict=False)):
        if isinstance(want, Skip | PauseLibrary) and type(got) is type(want) and want.reason in got.reason:
            if isinstance(got, Skip):
                actual[index] = got._replace(reason=want.reason)
            else:
                actual[index] = dataclasses.replace(got, reason=want.reason)
    assert actual == list(expected)


EPISODE = _file("Show/S01E01.mkv", fingerprint="fp:episode")


EPISODE_OUT = "TV/Show/S01E01.mkv"


OTHER = _file("Show/S01E02.mkv", fingerprint="fp:other")


THIRD = _file("Show/S01E03.mkv", fingerprint="fp:third")


RENAMED = _file("Show/Season 1/Pilot.mkv", fingerprint="fp:episode")


COPIED = _file("Show/S01E04.mp4", fingerprint="fp:copied")  # published as it is by a rule


COPIED_OUT = "TV/Show/S01E04.mp4"


def _carry_out(config: Config, result: Plan, disk: Observation, ledger: Ledger) -> tuple[Observation, Ledger]:
    """Do what `hb2r run` does once every action succeeded: publish, then record in the ledger."""
    entries = {(entry.library, entry.rel_path): entry for entry in ledger.entries}
    outputs = set(disk.archive.outputs)
    folders = set(disk.archive.output_folders)
    users = {user.name: user for user in ledger.users}
    presets = {library.name: library.preset for library in config.libraries}
    for action in result.actions:
        if isinstance(action, Transcode | Adopt | RenameOutput):
            preset_hash = disk.preset_hashes.get(presets[action.library], "")
            if isinstance(action, RenameOutput):
                old = entries.pop((action.library, action.from_rel_path))
                preset_hash = old.preset_hash
                outputs.discard(action.from_output_path)
            if isinstance(action, Adopt) and action.from_library is not None:  # its entry is carried over
                preset_hash = entries.pop((action.from_library, action.source.rel_path)).preset_hash
            source = action.source
            entries[(action.library, source.rel_path)] = LedgerEntry(
                action.library,
                source.rel_path,
                source.fingerprint or f"fp:{source.rel_path}",
                source.size,
                source.mtime_ns,
                preset_hash,
                action.output_path,
            )
            outputs.add(action.output_path)
            folders.add(action.output_path.split("/", 1)[0])
        elif isinstance(action, UserChange):
            if action.change is UserChangeKind.REMOVE:
                del users[action.name]
            else:
                users[action.name] = UserRecord(action.name, action.role, action.password_hash)
    archive = dataclasses.replace(disk.archive, outputs=frozenset(outputs), output_folders=frozenset(folders))
    ledger = dataclasses.replace(ledger, entries=tuple(entries.values()), users=tuple(users.values()))
    return dataclasses.replace(disk, archive=archive), ledger


