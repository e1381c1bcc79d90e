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
- Files are decided folder by folder (folders in path order), each folder's files by name:
  the whole library at once (`plan`) or one folder at a time (`plan_in_folder_batches`, and
  `agent.batch_plan`, where the decisions are), with the same actions in the same order.
- Two sources that map to one output (`a.avi`, `a.mp4` -> `a.mkv`) are a conflict: the
  one already recorded, else the first by name, wins; the other is skipped and reported.
  Two new copies of one renamed file: the first in that order takes the output.
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

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from agent.batch_plan import (
    Claims,
    FolderBatch,
    LibraryContext,
    file_order,
    fingerprints_needed_in_batch,
    plan_batch,
    plan_vanished,
    renamable_by_fingerprint,
    rule_hashes,
)
from agent.config.models import Config, Library, Preset, User
from agent.domain import (
    Action,
    Ledger,
    LedgerEntry,
    LibraryObservation,
    Observation,
    PauseLibrary,
    Plan,
    SeenFile,
    Skip,
    SourceFile,
    SourceStatus,
    UserChange,
    UserChangeKind,
    UserRecord,
)
from agent.identity import library_identity
from agent.pause import PauseCounts, pause_reason


def plan(config: Config, observation: Observation, ledger: Ledger, *, now_ns: int) -> Plan:
    """Given desired state, what the disk holds and what hb2r remembers, return the Plan."""
    return _plan(config, observation, ledger, now_ns=now_ns, by_folder=False)


def plan_in_folder_batches(config: Config, observation: Observation, ledger: Ledger, *, now_ns: int) -> Plan:
    """Return the same Plan as `plan`, decided one folder at a time (`agent.batch_plan`)."""
    return _plan(config, observation, ledger, now_ns=now_ns, by_folder=True)


def _plan(config: Config, observation: Observation, ledger: Ledger, *, now_ns: int, by_folder: bool) -> Plan:
    actions: list[Action] = []
    for library in config.libraries:
        actions.extend(_plan_library(_LibraryFacts.of(config, library, observation, ledger), now_ns=now_ns,
                                     by_folder=by_folder))  # fmt: skip
    actions.extend(plan_users(config.users, ledger.users))
    return Plan(tuple(actions))


def library_context(
    config: Config, library: Library, observation: Observation, ledger: Ledger
) -> tuple[LibraryContext, str | None]:
    """Return a library's context for planning it in batches, and why it is paused (None: it is not)."""
    facts = _LibraryFacts.of(config, library, observation, ledger)
    return facts.context(), facts.pause_reason()


def fingerprints_needed(
    config: Config, observation: Observation, ledger: Ledger, *, now_ns: int
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
        batch = facts.batch(renamable={})
        found = fingerprints_needed_in_batch(facts.context(), batch, vanished_sizes=vanished_sizes, now_ns=now_ns)
        needed.update((library.name, rel_path) for rel_path in found)
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
    ledger: Ledger
    max_vanish_percent: int
    orphans: dict[str, LedgerEntry]  # output path -> entry of a library the config no longer has

    @classmethod
    def of(cls, config: Config, library: Library, observation: Observation, ledger: Ledger) -> _LibraryFacts:
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

    def pause_reason(self) -> str | None:
        known: Iterable[str]
        if self.library.name in self.ledger.file_counts:
            baseline, known = self.ledger.file_counts[self.library.name], self.seen.keys()
        else:
            baseline, known = len(self.entries), self.entries.keys()
        hidden = self.hidden_prefixes()
        prefix = self.library.output + "/"
        counts = PauseCounts(
            files_now=len(self.files),
            baseline=baseline,
            hidden_known=sum(1 for rel in known if rel.startswith(hidden)) if hidden else 0,
            recorded_outputs=sum(1 for entry in self.entries.values() if entry.output_path.startswith(prefix)),
        )
        return pause_reason(
            self.library,
            archive=self.observation.archive,
            status=self.observed.status,
            detail=self.observed.detail,
            counts=counts,
            max_vanish_percent=self.max_vanish_percent,
        )

    def hidden_prefixes(self) -> tuple[str, ...]:
        """Return the prefixes of the paths that unreadable folders hide from the scan."""
        return tuple(folder.rstrip("/") + "/" for folder in self.observed.unreadable_dirs)

    def context(self) -> LibraryContext:
        preset_hash = library_identity(self.library, self.observation.preset_hashes)
        hashes = rule_hashes(self.library, self.observation.preset_hashes)
        return LibraryContext(self.library, self.preset, preset_hash, self.hidden_prefixes(), hashes)

    def batch(self, *, renamable: dict[str, LedgerEntry]) -> FolderBatch:
        """Return the whole library as one batch."""
        outputs = self.observation.archive.outputs
        return FolderBatch(self.files, self.entries, self.seen, outputs, self.orphans, renamable)

    def vanished_entries(self) -> list[LedgerEntry]:
        """Return recorded files not seen now, leaving out those under unreadable folders."""
        present = {source.rel_path for source in self.files}
        hidden = self.hidden_prefixes()
        return [
            entry
            for rel_path, entry in sorted(self.entries.items())
            if rel_path not in present and not rel_path.startswith(hidden)
        ]


def _plan_library(facts: _LibraryFacts, *, now_ns: int, by_folder: bool) -> Iterator[Action]:
    name = facts.library.name
    reason = facts.pause_reason()
    if reason is not None:
        yield PauseLibrary(name, reason)
        return
    context = facts.context()
    outputs = facts.observation.archive.outputs
    vanished = facts.vanished_entries()
    whole = facts.batch(renamable=renamable_by_fingerprint(vanished, outputs))
    claims = Claims()
    for batch in _by_folder(whole) if by_folder else [whole]:
        actions, claims = plan_batch(context, batch, claims, now_ns=now_ns)
        yield from actions
    yield from plan_vanished(name, vanished, outputs, claims)
    for problem in facts.observed.problems:
        yield Skip(name, problem.rel_path, problem.message)


def _by_folder(whole: FolderBatch) -> Iterator[FolderBatch]:
    """Split a library's batch into one batch per folder, in folder order."""
    files: dict[str, list[SourceFile]] = {}
    for source in whole.files:
        files.setdefault(file_order(source)[0], []).append(source)
    entries: dict[str, dict[str, LedgerEntry]] = {}
    for rel_path, entry in whole.entries.items():
        entries.setdefault(rel_path.rpartition("/")[0], {})[rel_path] = entry
    for folder in sorted(files):
        in_folder = {source.rel_path for source in files[folder]}
        yield dataclasses.replace(
            whole,
            files=files[folder],
            entries=entries.get(folder, {}),
            seen={rel_path: seen for rel_path, seen in whole.seen.items() if rel_path in in_folder},
        )
