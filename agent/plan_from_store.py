"""Plan a library batch by batch against the scan memory and the ledger in the store.

The edge between `agent.batch_plan` (pure decisions over one batch) and the store: for each
batch of whole folders it reads, by index, only what the batch's decisions need
(`agent.store.batch_facts`), plans it, and lets it go; then it streams the vanished rows for
"source vanished" drift. Memory follows the batch, however large the library.

It expects what `agent.incremental_scan` describes: the walk this plan is about is recorded
in the scan memory (seen rows: a ledger row without one has vanished) and the archive's names
in `archive_files`, and the library is not paused (its pause reason is decided first, from
counts). Actions come in the order `agent.plan.plan` gives them: the tables of
tests/unit/test_plan.py run through here too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from agent.batch_plan import (
    Claims,
    FolderBatch,
    LibraryContext,
    file_order,
    fingerprints_needed_in_batch,
    plan_batch,
    plan_vanished,
    rule_hashes,
)
from agent.config.models import Config, Library
from agent.domain import Action, LedgerEntry, LibraryObservation, ScanProblem, SeenFile, Skip, SourceFile
from agent.identity import library_identity, output_namer
from agent.pause import PauseCounts

# Files per batch: folders are added to a batch until it holds this many (a folder is never split).
BATCH_FILES = 5000
VANISHED_PAGE = 1000


class BatchFacts(Protocol):
    """What planning reads from the store (`agent.store.protocol.Store` has it)."""

    def ledger_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, LedgerEntry]: ...
    def seen_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, SeenFile]: ...
    def outputs_present(self, paths: Collection[str]) -> set[str]: ...
    def rows_holding_outputs(
        self, paths: Collection[str], *, other_than: Collection[str]
    ) -> dict[str, LedgerEntry]: ...
    def vanished_sizes(self, library: str, sizes: Collection[int]) -> set[int]: ...
    def vanished_with_fingerprints(
        self, library: str, fingerprints: Collection[str], *, hidden: tuple[str, ...] = ()
    ) -> dict[str, LedgerEntry]: ...
    def vanished_rows(self, library: str) -> Iterator[LedgerEntry]: ...
    def load_file_counts(self) -> dict[str, int]: ...
    def ledger_count(self, library: str) -> int: ...
    def count_under(self, library: str, prefixes: Sequence[str], *, remembered: bool) -> int: ...
    def outputs_recorded_in(self, library: str, output_folder: str) -> int: ...


# Given a batch's files and the paths whose fingerprint the plan needs, return the files with
# those fingerprints filled in (read from disk, or from the scan memory while size and mtime hold).
FillFingerprints = Callable[[Sequence[SourceFile], set[str], dict[str, SeenFile]], Sequence[SourceFile]]


def _as_given(files: Sequence[SourceFile], needed: set[str], seen: dict[str, SeenFile]) -> Sequence[SourceFile]:
    return files


def library_context_of(
    config: Config, library: Library, observed: LibraryObservation, preset_hashes: Mapping[str, str]
) -> LibraryContext:
    """Return a library's context for planning it batch by batch, from its walk alone (no ledger)."""
    hidden = tuple(folder.rstrip("/") + "/" for folder in observed.unreadable_dirs)
    return LibraryContext(
        library, config.preset_for(library), library_identity(library, preset_hashes), hidden,
        rule_hashes(library, preset_hashes),
    )  # fmt: skip


def pause_counts(
    store: BatchFacts, library: Library, *, files_now: int, hidden: tuple[str, ...], output_folder_present: bool
) -> PauseCounts:
    """Return the counts the library's pause depends on (`agent.pause`), read from the store as
    it is before this walk is recorded: no row of the library is read."""
    baseline = store.load_file_counts().get(library.name)
    remembered = baseline is not None
    return PauseCounts(
        files_now=files_now,
        baseline=baseline if baseline is not None else store.ledger_count(library.name),
        hidden_known=store.count_under(library.name, hidden, remembered=remembered) if hidden else 0,
        recorded_outputs=0 if output_folder_present else store.outputs_recorded_in(library.name, library.output),
    )


def plan_library_from_store(
    context: LibraryContext,
    store: BatchFacts,
    *,
    folders: Iterable[tuple[str, Sequence[SourceFile]]],
    configured: Collection[str],
    problems: Sequence[ScanProblem] = (),
    now_ns: int,
    fill_fingerprints: FillFingerprints = _as_given,
) -> Iterator[Action]:
    """Given a library's context, its folders with their files now (in folder order), the names of
    the configured libraries and the walk's problems, yield the library's actions."""
    claimed: list[Claims] = []
    yield from plan_folders_from_store(
        context, store, folders=folders, configured=configured, now_ns=now_ns, fill_fingerprints=fill_fingerprints,
        claimed=claimed,
    )  # fmt: skip
    yield from plan_library_tail(context, store, claims=claimed[-1], problems=problems)


def plan_folders_from_store(
    context: LibraryContext,
    store: BatchFacts,
    *,
    folders: Iterable[tuple[str, Sequence[SourceFile]]],
    configured: Collection[str],
    now_ns: int,
    fill_fingerprints: FillFingerprints = _as_given,
    claimed: list[Claims],
) -> Iterator[Action]:
    """Yield the actions about the files of these folders, batch by batch; once done, append what
    the batches claimed of the vanished rows to `claimed` (for `plan_library_tail`)."""
    steps = folder_steps(context, store, folders=folders, configured=configured, now_ns=now_ns, claimed=claimed)
    reply: Sequence[SourceFile] | None = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration:
            return
        reply = None
        if isinstance(step, NeedFingerprints):
            reply = fill_fingerprints(step.files, step.needed, step.seen)
        else:
            yield from step


@dataclass(frozen=True)
class NeedFingerprints:
    """A step of `folder_steps`: fill these fingerprints (see `FillFingerprints`) and send the files back."""

    files: Sequence[SourceFile]
    needed: set[str]
    seen: dict[str, SeenFile]


def folder_steps(
    context: LibraryContext,
    store: BatchFacts,
    *,
    folders: Iterable[tuple[str, Sequence[SourceFile]]],
    configured: Collection[str],
    now_ns: int,
    claimed: list[Claims],
) -> Generator[list[Action] | NeedFingerprints, Sequence[SourceFile] | None, None]:
    """`plan_folders_from_store` as steps, for a caller that reads fingerprints elsewhere (the
    agent, in a thread, so that its loop is not held up by the disk): each batch's actions come
    as one step (a list, empty if the batch is in sync); where a batch needs fingerprints it
    yields NeedFingerprints first and takes the filled files by `send`."""
    name = context.library.name
    claims = Claims()
    for pairs, walked in folder_batches(folders):
        batch_folders = [folder for folder, _ in pairs]
        batch = _read_batch(context, store, batch_folders, walked, configured=configured, claims=claims)
        vanished_sizes = store.vanished_sizes(name, _new_sizes(batch))
        needed = (
            set(fingerprints_needed_in_batch(context, batch, vanished_sizes=vanished_sizes, now_ns=now_ns))
            if vanished_sizes or batch.entries or batch.orphans  # else nothing recorded is like these files
            else set()
        )
        if needed:
            filled = yield NeedFingerprints(batch.files, needed, dict(batch.seen))
            files = batch.files if filled is None else filled
            batch = dataclasses.replace(batch, files=files, renamable=_renamable(context, store, files, claims))
        actions, claims = plan_batch(context, batch, claims, now_ns=now_ns)
        yield actions  # even none: a caller on an event loop gives it a turn between batches
    claimed.append(claims)


def plan_library_tail(
    context: LibraryContext, store: BatchFacts, *, claims: Claims, problems: Sequence[ScanProblem]
) -> Iterator[Action]:
    """Yield what is decided after the library's folders: "source vanished" drift (every vanished
    row, less what the batches claimed) and the walk's problems."""
    yield from _vanished_drift(context, store, claims)
    for problem in problems:
        yield Skip(context.library.name, problem.rel_path, problem.message)


def folder_batches(
    folders: Iterable[tuple[str, Sequence[SourceFile]]],
) -> Iterator[tuple[list[tuple[str, Sequence[SourceFile]]], list[SourceFile]]]:
    """Group whole folders, in the order given, into batches of about BATCH_FILES files: (each
    folder with its files, all their files)."""
    pairs: list[tuple[str, Sequence[SourceFile]]] = []
    files: list[SourceFile] = []
    for folder, found in folders:
        pairs.append((folder, found))
        files.extend(found)
        if len(files) >= BATCH_FILES:
            yield pairs, files
            pairs, files = [], []
    if pairs:
        yield pairs, files


STRETCH = 500  # actions handled together (one query for their jobs, one transaction for their queue)


def stretches(actions: Iterable[Action]) -> Iterator[list[Action]]:
    """Group actions, in order, into lists of STRETCH."""
    stretch: list[Action] = []
    for action in actions:
        stretch.append(action)
        if len(stretch) >= STRETCH:
            yield stretch
            stretch = []
    if stretch:
        yield stretch


def _read_batch(
    context: LibraryContext,
    store: BatchFacts,
    folders: list[str],
    files: Sequence[SourceFile],
    *,
    configured: Collection[str],
    claims: Claims,
) -> FolderBatch:
    name = context.library.name
    output_of = output_namer(context.library, context.preset)
    entries = store.ledger_in_folders(name, folders)
    desired = {source.rel_path: output_of(source.rel_path) for source in files}
    outputs = set(desired.values())
    named = outputs.union(entry.output_path for entry in entries.values())
    return FolderBatch(
        files=files,
        entries=entries,
        seen=store.seen_in_folders(name, folders),
        outputs=store.outputs_present(named),
        orphans=store.rows_holding_outputs(outputs, other_than=configured),
        renamable=_renamable(context, store, files, claims),
        desired=desired,
    )


def _renamable(
    context: LibraryContext, store: BatchFacts, files: Sequence[SourceFile], claims: Claims
) -> dict[str, LedgerEntry]:
    """Return the vanished rows the batch's fingerprints may take (see `FolderBatch.renamable`)."""
    fingerprints = {source.fingerprint for source in files if source.fingerprint} - claims.fingerprints
    if not fingerprints:
        return {}
    return store.vanished_with_fingerprints(context.library.name, fingerprints, hidden=context.hidden)


def _new_sizes(batch: FolderBatch) -> set[int]:
    return {source.size for source in batch.files if source.rel_path not in batch.entries}


def _vanished_drift(context: LibraryContext, store: BatchFacts, claims: Claims) -> Iterator[Action]:
    """Yield "source vanished" drift, reading the vanished rows and their outputs a page at a time."""
    hidden = context.hidden
    page: list[LedgerEntry] = []
    for entry in store.vanished_rows(context.library.name):
        if hidden and entry.rel_path.startswith(hidden):
            continue
        page.append(entry)
        if len(page) >= VANISHED_PAGE:
            yield from _drift_of(context, store, page, claims)
            page = []
    yield from _drift_of(context, store, page, claims)


def _drift_of(context: LibraryContext, store: BatchFacts, page: list[LedgerEntry], claims: Claims) -> Iterator[Action]:
    if page:
        present = store.outputs_present({entry.output_path for entry in page})
        yield from plan_vanished(context.library.name, page, present, claims)


def by_folder(files: Iterable[SourceFile]) -> list[tuple[str, list[SourceFile]]]:
    """Group files by folder, in folder order (as a walk's folders are planned)."""
    grouped: dict[str, list[SourceFile]] = {}
    for source in files:
        grouped.setdefault(file_order(source)[0], []).append(source)
    return sorted(grouped.items())
