"""Desired state versus actual state, as a list of actions. Pure: no I/O, no clock.

`plan()` is level-triggered like a Kubernetes controller: it looks at everything each time
and says what must happen for the archive to match the watched folders. Run it twice on
the same facts and it says the same thing; once the actions are carried out, it says
nothing (but reports). `hb2r plan` prints it; `hb2r run` acts on it.

Choices where DESIGN.md is silent:
- A file is stable once `stable_after` has passed since the latest of its mtime, its ctime
  (which a copy cannot back-date) and the last change an earlier scan saw in its size or
  mtime. The scan memory lives in SQLite, so a restart does not reset the wait.
- A renamed source is recognised only within its library, by fingerprint, and only when
  the old output still exists; otherwise the file is simply transcoded. An output hb2r did
  not make is never moved over: if one sits at the new path, it is adopted instead.
- Two sources that map to one output (`a.avi`, `a.mp4` -> `a.mkv`) are a conflict: the
  one already recorded, else the first by name, wins; the other is skipped and reported.
  A recorded source keeps that claim on its new path when the output folder or container
  changes in the config.
- A library is paused, with no other action, when its source is missing or unreadable,
  when the archive is missing, when its output folder vanished while transcodes are
  recorded in it, or when more than `max_vanish_percent` of its files vanished since the
  last good scan (or, before any scan was recorded, of the transcodes recorded). Files an
  unreadable subfolder hides have not vanished: they count neither here nor as drift.
- Paused libraries, skipped files and drift are reports: on their own, `hb2r plan`
  exits 0. Waiting files count as pending work. The planner does not read the queue: a
  transcode whose job is dead or cancelled is not pending, which `agent.queued_plan` says
  from the jobs, in a pure step after this one.
- A library renamed in the config keeps its outputs: a ledger entry under a library name the
  config no longer has, for the same relative path and the output the file maps to now, is
  that file's. Same content: it is carried over (an Adopt naming the old library), with no
  encode; changed content: it is encoded again and replaces the output hb2r made.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from operator import itemgetter

from agent.config.models import Config, Library, Preset, User
from agent.domain import (
    Action,
    Adopt,
    Drift,
    DriftReason,
    LedgerEntry,
    LibraryObservation,
    Observation,
    PauseLibrary,
    Plan,
    RenameOutput,
    SeenFile,
    Skip,
    SourceFile,
    SourceStatus,
    Transcode,
    TranscodeReason,
    UserChange,
    UserChangeKind,
    UserRecord,
    Wait,
)
from agent.domain import Ledger as LedgerState
from agent.identity import output_namer

NS_PER_SECOND = 1_000_000_000


def plan(config: Config, observation: Observation, ledger: LedgerState, *, now_ns: int) -> Plan:
    """Given desired state, what the disk holds and what hb2r remembers, return the Plan."""
    actions: list[Action] = []
    for library in config.libraries:
        actions.extend(_plan_library(_LibraryFacts.of(config, library, observation, ledger), now_ns=now_ns))
    actions.extend(plan_users(config.users, ledger.users))
    return Plan(tuple(actions))


def fingerprints_needed(
    config: Config, observation: Observation, ledger: LedgerState, *, now_ns: int
) -> set[tuple[str, str]]:
    """Return the (library, path) of the files whose fingerprint the plan depends on.

    Only these are read from disk: a recorded file whose size or mtime moved (has its
    content changed?) and a new file as large as a recorded one that vanished (is it a
    rename?). Every other file is decided by its size and mtime alone.
    """
    needed: set[tuple[str, str]] = set()
    for library in config.libraries:
        facts = _LibraryFacts.of(config, library, observation, ledger)
        if not (facts.entries or facts.orphans) or facts.pause_reason() is not None:
            continue  # with nothing recorded, no file is a rename or a changed one
        vanished_sizes = {entry.size for entry in facts.vanished_entries()}
        output_of = output_namer(facts.library, facts.preset)
        for source in facts.files:
            entry = facts.entries.get(source.rel_path) or facts.orphan_of(source.rel_path, output_of(source.rel_path))
            if entry is None:
                if source.size not in vanished_sizes:
                    continue
            elif (entry.size, entry.mtime_ns) == (source.size, source.mtime_ns):
                continue
            if source.size and facts.stable_in_seconds(source, now_ns=now_ns) <= 0:
                needed.add((library.name, source.rel_path))
    return needed


def plan_users(desired: Iterable[User], current: Iterable[UserRecord]) -> list[UserChange]:
    """Return the user changes that make the stored users match the config's.

    While the config declares no users, the admin hb2r generated for that case stays;
    the first declared user replaces it.
    """
    wanted = {user.name: user for user in desired}
    stored = {user.name: user for user in current if wanted or not user.generated}
    changes: list[UserChange] = []
    for name in sorted(wanted.keys() | stored.keys()):
        want, have = wanted.get(name), stored.get(name)
        if want is not None and have is None:
            changes.append(UserChange(UserChangeKind.ADD, name, want.role, want.password_hash))
        elif want is not None and have is not None:
            if (want.role, want.password_hash) != (have.role, have.password_hash):
                changes.append(UserChange(UserChangeKind.UPDATE, name, want.role, want.password_hash))
        elif have is not None:
            changes.append(UserChange(UserChangeKind.REMOVE, name, have.role))
    return changes


@dataclass(frozen=True)
class _LibraryFacts:
    """What the planner knows about one library, indexed for lookups."""

    library: Library
    preset: Preset
    observed: LibraryObservation
    files: tuple[SourceFile, ...]
    entries: dict[str, LedgerEntry]
    seen: dict[str, SeenFile]
    observation: Observation
    ledger: LedgerState
    max_vanish_percent: int
    orphans: dict[str, LedgerEntry]  # output path -> entry of a library the config no longer has

    @classmethod
    def of(cls, config: Config, library: Library, observation: Observation, ledger: LedgerState) -> _LibraryFacts:
        observed = observation.libraries.get(library.name) or LibraryObservation(
            library.name, SourceStatus.MISSING, detail="not scanned"
        )
        configured = {each.name for each in config.libraries}
        return cls(
            library=library,
            preset=config.preset_for(library),
            observed=observed,
            files=observed.files,
            entries={entry.rel_path: entry for entry in ledger.entries if entry.library == library.name},
            seen={rel_path: seen for (name, rel_path), seen in ledger.seen.items() if name == library.name},
            observation=observation,
            ledger=ledger,
            max_vanish_percent=config.scan.max_vanish_percent,
            orphans={entry.output_path: entry for entry in ledger.entries if entry.library not in configured},
        )

    def orphan_of(self, rel_path: str, output_path: str) -> LedgerEntry | None:
        """Return the entry a renamed library left for this file and output, or None."""
        orphan = self.orphans.get(output_path)
        return orphan if orphan is not None and orphan.rel_path == rel_path else None

    def pause_reason(self) -> str | None:
        archive = self.observation.archive
        if not archive.available:
            return f"archive unavailable: {archive.detail}"
        if self.observed.status is SourceStatus.MISSING:
            return f"source folder missing: {self.library.source} (not mounted?)"
        if self.observed.status is SourceStatus.UNREADABLE:
            return f"source folder unreadable: {self.library.source}: {self.observed.detail}"
        prefix = self.library.output + "/"
        recorded_outputs = sum(1 for entry in self.entries.values() if entry.output_path.startswith(prefix))
        if recorded_outputs and self.library.output not in archive.output_folders:
            return (
                f"output folder {self.library.output!r} is missing from the archive while "
                f"{recorded_outputs} transcodes are recorded in it"
            )
        known: Iterable[str]
        if self.library.name in self.ledger.file_counts:
            baseline, known = self.ledger.file_counts[self.library.name], self.seen.keys()
        else:
            baseline, known = len(self.entries), self.entries.keys()
        hidden = self.hidden_prefixes()
        # Files an unreadable folder hides are still there: they are not counted as vanished.
        vanished = baseline - len(self.files) - (sum(1 for rel in known if rel.startswith(hidden)) if hidden else 0)
        if baseline and vanished * 100 > self.max_vanish_percent * baseline:
            return (
                f"{vanished} of {baseline} files vanished since the last good scan "
                f"(more than {self.max_vanish_percent}%); is the disk mounted?"
            )
        return None

    def stable_in_seconds(self, source: SourceFile, *, now_ns: int) -> float:
        """Return how long until the file counts as stable (<= 0: it is)."""
        since = max(source.mtime_ns, source.ctime_ns)
        seen = self.seen.get(source.rel_path)
        if seen is not None:
            if (seen.size, seen.mtime_ns) != (source.size, source.mtime_ns):
                since = max(since, now_ns)
            elif seen.changed_at_ns is not None:
                since = max(since, seen.changed_at_ns)
        return (since + self.stable_after_ns - now_ns) / NS_PER_SECOND

    @cached_property
    def stable_after_ns(self) -> int:
        return int(self.library.stable_after.total_seconds() * NS_PER_SECOND)

    def hidden_prefixes(self) -> tuple[str, ...]:
        """Return the prefixes of the paths that unreadable folders hide from the scan."""
        return tuple(folder.rstrip("/") + "/" for folder in self.observed.unreadable_dirs)

    def vanished_entries(self) -> list[LedgerEntry]:
        """Return recorded files not seen now, leaving out those under unreadable folders."""
        present = {source.rel_path for source in self.files}
        hidden = self.hidden_prefixes()
        return [
            entry
            for rel_path, entry in sorted(self.entries.items())
            if rel_path not in present and not rel_path.startswith(hidden)
        ]


def _plan_library(facts: _LibraryFacts, *, now_ns: int) -> Iterator[Action]:
    name = facts.library.name
    reason = facts.pause_reason()
    if reason is not None:
        yield PauseLibrary(name, reason)
        return
    outputs = facts.observation.archive.outputs
    current_hash = facts.observation.preset_hashes.get(facts.library.preset)
    reencode = facts.library.on_preset_change == "reencode"
    vanished = facts.vanished_entries()
    vanished_paths = {entry.rel_path for entry in vanished}
    renamable = {entry.fingerprint: entry for entry in reversed(vanished) if entry.output_path in outputs}
    vanished_outputs = {entry.output_path for entry in vanished}
    # Output path -> the source that owns it; a vanished source's output may be taken over.
    owners = {entry.output_path: rel for rel, entry in facts.entries.items() if rel not in vanished_paths}

    output_of = output_namer(facts.library, facts.preset)
    # A recorded source also holds the path its output belongs at now (the output folder or
    # container may have changed in the config): a newcomer may not take it.
    reserved: dict[str, str] = {}
    for rel in sorted(rel for output, rel in owners.items() if output_of(rel) != output):
        reserved.setdefault(output_of(rel), rel)
    settled_before = now_ns - facts.stable_after_ns  # changed before this: stable, unless a scan saw more
    seen = facts.seen
    for source in sorted(facts.files, key=_by_path):
        rel_path = source.rel_path
        if source.mtime_ns > settled_before or source.ctime_ns > settled_before or rel_path in seen:
            wait = facts.stable_in_seconds(source, now_ns=now_ns)
            if wait > 0:
                yield Wait(name, rel_path, wait)
                continue
        desired = output_of(rel_path)
        if source.size == 0:
            yield Skip(name, rel_path, "empty file (0 bytes)")
            continue
        entry = facts.entries.get(rel_path)
        if entry is not None:
            action = _plan_recorded(facts, source, entry, desired, current_hash=current_hash, reencode=reencode)
            if action is not None:
                yield action
            continue
        owner = owners.get(desired) or reserved.get(desired)
        if owner is not None and owner != rel_path:
            yield Skip(name, rel_path, f"its output {desired} already belongs to {owner}")
            continue
        owners[desired] = rel_path
        orphan = facts.orphan_of(rel_path, desired) if desired in outputs else None
        if orphan is not None:  # hb2r's output, recorded under the library's old name
            if _same_content(orphan, source):
                yield Adopt(name, source, desired, from_library=orphan.library)
            else:
                yield Transcode(name, source, desired, TranscodeReason.CHANGED)
            continue
        # An output hb2r did not make is never overwritten, not even by a rename: it is adopted.
        foreign = desired in outputs and desired not in vanished_outputs
        match = renamable.get(source.fingerprint) if source.fingerprint else None
        if match is not None and not foreign:
            del renamable[match.fingerprint]
            vanished_paths.discard(match.rel_path)
            yield RenameOutput(name, source, match.rel_path, match.output_path, desired)
        elif foreign:
            yield Adopt(name, source, desired)
        else:
            yield Transcode(name, source, desired, TranscodeReason.NEW)

    claimed = set(owners)
    for entry in vanished:
        if entry.rel_path in vanished_paths and entry.output_path in outputs and entry.output_path not in claimed:
            yield Drift(name, entry.rel_path, entry.output_path, DriftReason.SOURCE_VANISHED)
    for problem in facts.observed.problems:
        yield Skip(name, problem.rel_path, problem.message)


def _plan_recorded(
    facts: _LibraryFacts,
    source: SourceFile,
    entry: LedgerEntry,
    desired: str,
    *,
    current_hash: str | None,
    reencode: bool,
) -> Action | None:
    """Return the action for a file the ledger knows, or None when it is in sync (the usual case)."""
    name = facts.library.name
    if not _same_content(entry, source):
        return Transcode(name, source, desired, TranscodeReason.CHANGED)
    if entry.output_path not in facts.observation.archive.outputs:
        return Transcode(name, source, desired, TranscodeReason.OUTPUT_MISSING)
    preset_changed = current_hash is not None and entry.preset_hash != current_hash
    same_container = entry.output_path.rsplit(".", 1)[-1] == desired.rsplit(".", 1)[-1]
    if preset_changed or not same_container:
        if reencode:
            return Transcode(name, source, desired, TranscodeReason.PRESET_CHANGED)
        return Drift(name, source.rel_path, entry.output_path, DriftReason.PRESET_CHANGED)
    if entry.output_path != desired:  # the library's output folder was renamed in the config
        return RenameOutput(name, source, source.rel_path, entry.output_path, desired)
    return None


def _same_content(entry: LedgerEntry, source: SourceFile) -> bool:
    """Return whether source still has the content entry recorded (same size and mtime, or fingerprint)."""
    return (entry.size, entry.mtime_ns) == (source.size, source.mtime_ns) or (
        source.fingerprint is not None and source.fingerprint == entry.fingerprint
    )


_by_path = itemgetter(0)  # SourceFile.rel_path
