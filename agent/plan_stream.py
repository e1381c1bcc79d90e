"""`hb2r plan`'s planning: each library walked and planned a batch of folders at a time, read-only.

Why: the agent records its walk in the scan memory and plans from the store
(`agent.plan_from_store`); `hb2r plan` must write nothing, yet must not hold a million files
as Python objects either. So it plans each batch of folders as the walk reaches it, against
the ledger and scan memory read by index, and hands its actions on (`emit`) to be written
out. Memory follows the batch; only the walked folders' names and the vanished rows
(ledger rows whose file the walk did not find) are kept for the whole library.

The one fact a batch cannot know before the walk is over is which rows vanished: a new file
may be a rename of a row whose folder comes later. A batch with a new file as large as a
row that is not yet seen, or already vanished, is "uncertain". Until the first uncertain
batch, batches are planned as they come (their decisions need no vanished row, and nothing
later changes them); from it on, the walk only notes what vanished, and the library is then
walked and planned again with every vanished row known (`Outcome.replanned`). A big library
that is unchanged, or new, is walked once; a library with a rename in it twice.

The actions are the agent's for the same disk and state, and so is the pause, decided from
counts once the walk is over: a paused library's planned actions are dropped by the caller.
They come folder by folder in the walk's order (depth first, by name), where the agent goes by
folder name: the two differ only where a folder's name sorts before "/" ("Show - Extras" comes
after "Show/Season 1" here).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from agent.archive_lookup import ArchiveLookup
from agent.batch_plan import Claims, LibraryContext
from agent.config.models import Config, Library
from agent.domain import Action, ArchiveObservation, LedgerEntry, SeenFile, SourceFile
from agent.observe import fingerprints_from_disk
from agent.pause import pause_reason
from agent.plan_from_store import folder_batches, pause_counts, plan_folders_from_store, plan_library_tail, stretches
from agent.scan import FolderWalk

Emit = Callable[[Sequence[Action]], None]


class PlanFacts(Protocol):
    """What planning a library for `hb2r plan` reads from the store (`agent.store.protocol.Store`
    has it; `agent.plan_command.NoState` when there is none yet)."""

    def ledger_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, LedgerEntry]: ...
    def seen_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, SeenFile]: ...
    def rows_holding_outputs(
        self, paths: Collection[str], *, other_than: Collection[str]
    ) -> dict[str, LedgerEntry]: ...
    def ledger_folders(self, library: str) -> set[str]: ...
    def ledger_with_sizes(self, library: str, sizes: Collection[int]) -> list[LedgerEntry]: ...
    def load_file_counts(self) -> dict[str, int]: ...
    def ledger_count(self, library: str) -> int: ...
    def count_under(self, library: str, prefixes: Sequence[str], *, remembered: bool) -> int: ...
    def outputs_recorded_in(self, library: str, output_folder: str) -> int: ...


@dataclass(frozen=True)
class Outcome:
    """What planning a library came to, besides the actions it emitted."""

    files: int  # the files the walk found
    paused: str | None = None  # why the library is paused (its emitted actions do not stand)
    replanned: bool = False  # the library was planned again: drop what was emitted before


class _WalkFacts:
    """The store's facts for planning batches (`agent.plan_from_store.BatchFacts`), with the
    vanished rows known so far held here and the outputs looked up in the archive itself."""

    def __init__(self, facts: PlanFacts, archive: ArchiveLookup, vanished: list[LedgerEntry]) -> None:
        self.facts = facts
        self.archive = archive
        self.vanished = vanished
        self._last: tuple[tuple[str, tuple[str, ...]], dict[str, LedgerEntry]] | None = None

    def ledger_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, LedgerEntry]:
        key = (library, tuple(folders))
        if self._last is None or self._last[0] != key:  # the walk asks first, then the batch's plan
            self._last = (key, self.facts.ledger_in_folders(library, folders))
        return self._last[1]

    def seen_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, SeenFile]:
        return self.facts.seen_in_folders(library, folders)

    def outputs_present(self, paths: Collection[str]) -> set[str]:
        return self.archive.present(paths)

    def rows_holding_outputs(self, paths: Collection[str], *, other_than: Collection[str]) -> dict[str, LedgerEntry]:
        return self.facts.rows_holding_outputs(paths, other_than=other_than)

    def vanished_sizes(self, library: str, sizes: Collection[int]) -> set[int]:
        return {entry.size for entry in self.vanished} & set(sizes)

    def vanished_with_fingerprints(
        self, library: str, fingerprints: Collection[str], *, hidden: tuple[str, ...] = ()
    ) -> dict[str, LedgerEntry]:
        wanted = set(fingerprints)
        candidates = [
            entry
            for entry in self.vanished
            if entry.fingerprint in wanted and not (hidden and entry.rel_path.startswith(hidden))
        ]
        present = self.archive.present({entry.output_path for entry in candidates})
        first: dict[str, LedgerEntry] = {}
        for entry in sorted(candidates, key=_by_path):
            if entry.output_path in present:
                first.setdefault(entry.fingerprint, entry)
        return first

    def vanished_rows(self, library: str) -> Iterator[LedgerEntry]:
        return iter(sorted(self.vanished, key=_by_path))

    def load_file_counts(self) -> dict[str, int]:
        return self.facts.load_file_counts()

    def ledger_count(self, library: str) -> int:
        return self.facts.ledger_count(library)

    def count_under(self, library: str, prefixes: Sequence[str], *, remembered: bool) -> int:
        return self.facts.count_under(library, prefixes, remembered=remembered)

    def outputs_recorded_in(self, library: str, output_folder: str) -> int:
        return self.facts.outputs_recorded_in(library, output_folder)


def plan_library_streamed(
    config: Config,
    library: Library,
    facts: PlanFacts,
    *,
    archive: ArchiveObservation,
    lookup: ArchiveLookup,
    preset_hash: str | None,
    excluded: Sequence[Path],
    now_ns: int,
    emit: Emit,
    restart: Callable[[], None],
    rule_hashes: frozenset[str] = frozenset(),
) -> Outcome:
    """Walk and plan one library, emitting its actions a stretch at a time (see the module docstring);
    `restart` is called when the library is planned again: what was emitted before is dropped."""
    name = library.name
    configured = {each.name for each in config.libraries}
    context = LibraryContext(library, config.preset_for(library), preset_hash, rule_hashes=rule_hashes)
    vanished: list[LedgerEntry] = []
    walked: set[str] = set()
    walk = FolderWalk(library, excluded=excluded, now_ns=now_ns)
    store = _WalkFacts(facts, lookup, vanished)
    recorded = facts.ledger_count(name) > 0
    uncertain = False
    files = 0
    claimed: list[Claims] = []

    def batches() -> Iterator[tuple[str, Sequence[SourceFile]]]:
        nonlocal uncertain, files
        for pairs, found in folder_batches(walk.folders()):
            folders = [folder for folder, _ in pairs]
            files += len(found)
            walked.update(folders)
            entries = store.ledger_in_folders(name, folders) if recorded else {}
            present = {source.rel_path for source in found}
            vanished.extend(entry for rel_path, entry in entries.items() if rel_path not in present)
            if not uncertain and recorded:
                uncertain = _may_be_renamed(facts, name, found, entries, walked, vanished)
            if not uncertain:
                yield from pairs

    plan = plan_folders_from_store(
        context, store, folders=batches(), configured=configured, now_ns=now_ns,
        fill_fingerprints=fingerprints_from_disk(library), claimed=claimed,
    )  # fmt: skip
    for stretch in stretches(plan):
        emit(stretch)
    observed = walk.result()
    hidden = tuple(folder + "/" for folder in walk.unreadable)
    if recorded:
        vanished.extend(_rows_of_folders_not_walked(facts, name, walked, hidden=hidden))
    counts = pause_counts(store, library, files_now=files, hidden=hidden,
                          output_folder_present=library.output in archive.output_folders)  # fmt: skip
    reason = pause_reason(library, archive=archive, status=observed.observation.status,
                          detail=observed.observation.detail, counts=counts,
                          max_vanish_percent=config.scan.max_vanish_percent)  # fmt: skip
    if reason is not None:
        return Outcome(files, paused=reason)
    context = LibraryContext(library, context.preset, preset_hash, hidden, rule_hashes)
    if uncertain:  # plan it all again, every vanished row known
        again = FolderWalk(library, excluded=excluded, now_ns=now_ns)
        claimed.clear()
        plan = plan_folders_from_store(
            context, store, folders=again.folders(),
            configured=configured, now_ns=now_ns, fill_fingerprints=fingerprints_from_disk(library), claimed=claimed,
        )  # fmt: skip
        restart()
        for stretch in stretches(plan):
            emit(stretch)
    tail = plan_library_tail(context, store, claims=claimed[-1] if claimed else Claims(),
                             problems=observed.observation.problems)  # fmt: skip
    for stretch in stretches(tail):
        emit(stretch)
    return Outcome(files, replanned=uncertain)


def _may_be_renamed(
    facts: PlanFacts,
    library: str,
    found: Sequence[SourceFile],
    entries: dict[str, LedgerEntry],
    walked: set[str],
    vanished: list[LedgerEntry],
) -> bool:
    """Return whether a new file of the batch is as large as a row not seen yet, or vanished."""
    sizes = {source.size for source in found if source.rel_path not in entries}
    if not sizes:
        return False
    gone = {entry.rel_path for entry in vanished}
    return any(
        entry.rel_path.rpartition("/")[0] not in walked or entry.rel_path in gone
        for entry in facts.ledger_with_sizes(library, sizes)
    )


def _rows_of_folders_not_walked(
    facts: PlanFacts, library: str, walked: set[str], *, hidden: tuple[str, ...]
) -> Iterator[LedgerEntry]:
    """Yield the ledger rows of library in folders the walk did not reach (less those an unreadable folder hides)."""
    missing = sorted(facts.ledger_folders(library) - walked)
    for start in range(0, len(missing), 100):
        for entry in facts.ledger_in_folders(library, missing[start : start + 100]).values():
            if not (hidden and entry.rel_path.startswith(hidden)):
                yield entry


def _by_path(entry: LedgerEntry) -> str:
    return entry.rel_path
