"""The planner's decisions for one batch of folders of a library. Pure: no I/O, no clock.

Why batches: holding every file, ledger row and output of a library as Python objects costs
memory in proportion to the library (703 MB at 1,000,000 files). Every decision about a file
needs only facts of its own folder, plus a few facts of the whole library that are small or
can be looked up by index (`agent.incremental_scan` says how each is read from the store):
- the pause reason (missing or unreadable source or archive, the vanish breaker), decided first
  from aggregate counts: a paused library has no other action;
- renames: the vanished entry (by path, the first) holding the fingerprint of a new file, with
  its output present (`FolderBatch.renamable`, which the caller fills for the batch's fingerprints);
- conflicts, adoption, renamed libraries, preset drift: an output path mirrors its source's
  folder, so the owners of the paths a batch's files map to are the ledger rows of the same
  folders (`FolderBatch.entries`), the outputs present there and the rows of libraries the config
  no longer names that hold those paths (`FolderBatch.orphans`);
- "source vanished" drift: decided after the last batch (`plan_vanished`), from the vanished
  entries in path order, less those a rename or a newcomer took, which the batches carry in
  `Claims` (a few, however large the library).
A batch holds whole folders. Files are decided folder by folder, each folder's files by name
(`file_order`): whether the library is planned as one batch or many, the actions and their order
are the same (the planner's tables run both ways: tests/unit/test_plan.py).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from agent.config.models import Library, Preset
from agent.domain import (
    Action,
    Adopt,
    Drift,
    DriftReason,
    LedgerEntry,
    RenameOutput,
    SeenFile,
    Skip,
    SourceFile,
    Transcode,
    TranscodeReason,
    Wait,
)
from agent.identity import copy_output_path, decided_identity, library_identity, output_namer

NS_PER_SECOND = 1_000_000_000
# A ledger row of a source published as it is (a rule's `copy`) holds "copy:" + the library's
# preset identity when it was copied: its output keeps the source's extension, and a change of
# the preset (or its rules) is drift like any other.
COPY_MARK = "copy:"
# A ledger row of a source whose encode saved too little with `larger_output: skip`: nothing was
# published, and the file is not encoded again while its content and the preset stay the same.
SKIP_MARK = "skip:"


@dataclass(frozen=True)
class LibraryContext:
    """The facts of a whole library that its batches are decided with."""

    library: Library
    preset: Preset
    preset_hash: str | None  # the current preset identity; None if HandBrakeCLI cannot tell
    hidden: tuple[str, ...] = ()  # prefixes of paths an unreadable folder hides ("Locked/")
    # the identities of the presets the library's rules and `hdr:` name: an output encoded with
    # one of them is in sync (the rules chose it), not drift
    rule_hashes: frozenset[str] = frozenset()

    @cached_property
    def decided_hashes(self) -> frozenset[str]:
        """The identities a copy's or a skip's ledger row holds while the rules that made it stand."""
        hashes = {self.preset_hash, *self.rule_hashes} - {None}
        return frozenset(decided_identity(found, self.library) for found in hashes if found is not None)

    @property
    def stable_after_ns(self) -> int:
        return int(self.library.stable_after.total_seconds() * NS_PER_SECOND)


@dataclass(frozen=True)
class FolderBatch:
    """The facts of some whole folders of one library."""

    files: Sequence[SourceFile]  # the files in them now
    entries: Mapping[str, LedgerEntry]  # rel_path -> ledger row, of these folders (sources present or gone)
    seen: Mapping[str, SeenFile]  # rel_path -> what earlier scans saw of the files
    outputs: Container[str]  # which outputs exist (at least the paths these files and rows name)
    orphans: Mapping[str, LedgerEntry] = field(default_factory=dict)  # output -> row of a library no longer named
    renamable: Mapping[str, LedgerEntry] = field(default_factory=dict)  # fingerprint -> vanished row, output there
    # rel_path -> the output path it maps to, where the caller has it already (else computed)
    desired: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Claims:
    """What the batches so far took from the vanished entries, carried to the next batch."""

    fingerprints: frozenset[str] = frozenset()  # renamable fingerprints a rename used
    renamed: frozenset[str] = frozenset()  # rel_paths of vanished entries a rename moved
    taken_outputs: frozenset[str] = frozenset()  # outputs of vanished entries a new file now owns


def file_order(source: SourceFile) -> tuple[str, str]:
    """The order files are decided in: folder by folder, each folder's files by name."""
    folder, _, name = source.rel_path.rpartition("/")
    return folder, name


def plan_batch(
    context: LibraryContext, batch: FolderBatch, claims: Claims, *, now_ns: int
) -> tuple[list[Action], Claims]:
    """Given a library's context, one batch of its folders and what earlier batches claimed,
    return the batch's actions and the claims to carry on. The library is not paused."""
    name = context.library.name
    outputs = batch.outputs
    reencode = context.library.on_preset_change == "reencode"
    hidden = context.hidden
    present = {source.rel_path for source in batch.files}
    vanished_paths = {rel for rel in batch.entries if rel not in present and not (hidden and rel.startswith(hidden))}
    vanished_outputs = {batch.entries[rel].output_path for rel in vanished_paths}
    # Output path -> the source that owns it; a vanished source's output may be taken over.
    owners = {entry.output_path: rel for rel, entry in batch.entries.items() if rel not in vanished_paths}
    output_of = output_namer(context.library, context.preset)
    known = batch.desired
    # A recorded source also holds the path its output belongs at now (the output folder or
    # container may have changed in the config): a newcomer may not take it.
    reserved: dict[str, str] = {}
    for rel in sorted(rel for output, rel in owners.items() if output_of(rel) != output):
        reserved.setdefault(output_of(rel), rel)
    stable_after_ns = context.stable_after_ns
    settled_before = now_ns - stable_after_ns  # changed before this: stable, unless a scan saw more
    seen = batch.seen
    used_fingerprints, renamed, taken = set(claims.fingerprints), set(claims.renamed), set(claims.taken_outputs)
    actions: list[Action] = []
    for source in sorted(batch.files, key=file_order):
        rel_path = source.rel_path
        if source.mtime_ns > settled_before or source.ctime_ns > settled_before or rel_path in seen:
            wait = stable_in_seconds(source, seen.get(rel_path), stable_after_ns=stable_after_ns, now_ns=now_ns)
            if wait > 0:
                actions.append(Wait(name, rel_path, wait))
                continue
        desired = known.get(rel_path) or output_of(rel_path)
        if source.size == 0:
            actions.append(Skip(name, rel_path, "empty file (0 bytes)"))
            continue
        entry = batch.entries.get(rel_path)
        if entry is not None:
            action = _plan_recorded(context, source, entry, desired, outputs=outputs, reencode=reencode)
            if action is not None:
                actions.append(action)
            continue
        owner = owners.get(desired) or reserved.get(desired)
        if owner is not None and owner != rel_path:
            actions.append(Skip(name, rel_path, f"its output {desired} already belongs to {owner}"))
            continue
        owners[desired] = rel_path
        if desired in vanished_outputs:
            taken.add(desired)
        orphan = orphan_of(batch.orphans, rel_path, desired) if desired in outputs else None
        if orphan is not None:  # hb2r's output, recorded under the library's old name
            if same_content(orphan, source):
                actions.append(Adopt(name, source, desired, from_library=orphan.library))
            else:
                actions.append(Transcode(name, source, desired, TranscodeReason.CHANGED))
            continue
        # An output hb2r did not make is never overwritten, not even by a rename: it is adopted.
        foreign = desired in outputs and desired not in vanished_outputs
        fingerprint = source.fingerprint
        match = batch.renamable.get(fingerprint) if fingerprint and fingerprint not in used_fingerprints else None
        if match is not None and not foreign:
            used_fingerprints.add(match.fingerprint)
            renamed.add(match.rel_path)
            actions.append(RenameOutput(name, source, match.rel_path, match.output_path, desired))
        elif foreign:
            actions.append(Adopt(name, source, desired))
        else:
            actions.append(Transcode(name, source, desired, TranscodeReason.NEW))
    return actions, Claims(frozenset(used_fingerprints), frozenset(renamed), frozenset(taken))


def rule_hashes(library: Library, preset_hashes: Mapping[str, str]) -> frozenset[str]:
    """Return the identities of the presets a library's rules and `hdr:` name, other than its own."""
    names = {rule.preset for rule in library.rules or () if rule.preset is not None}
    if library.hdr not in (None, "copy", "skip"):
        names.add(library.hdr)
    names.discard(library.preset)
    return frozenset(found for name in names if (found := library_identity(library, preset_hashes, name)) is not None)


def plan_vanished(
    library: str, vanished: Iterable[LedgerEntry], outputs: Container[str], claims: Claims
) -> Iterator[Drift]:
    """Given the library's vanished entries in path order (not those an unreadable folder hides),
    the outputs present and what the batches claimed, return the "source vanished" drift."""
    for entry in vanished:
        if entry.rel_path in claims.renamed or entry.output_path in claims.taken_outputs:
            continue
        if entry.output_path in outputs:
            yield Drift(library, entry.rel_path, entry.output_path, DriftReason.SOURCE_VANISHED)


def renamable_by_fingerprint(vanished: Iterable[LedgerEntry], outputs: Container[str]) -> dict[str, LedgerEntry]:
    """Given vanished entries in path order, return for each fingerprint the first whose output exists."""
    found: dict[str, LedgerEntry] = {}
    for entry in vanished:
        if entry.output_path in outputs:
            found.setdefault(entry.fingerprint, entry)
    return found


def fingerprints_needed_in_batch(
    context: LibraryContext, batch: FolderBatch, *, vanished_sizes: Container[int], now_ns: int
) -> Iterator[str]:
    """Return the paths of the batch's files whose fingerprint the plan depends on (see
    `agent.plan.fingerprints_needed`); the library has something recorded and is not paused."""
    output_of = _output_of(context, batch)
    orphans = batch.orphans
    for source in batch.files:
        entry = batch.entries.get(source.rel_path) or (
            orphan_of(orphans, source.rel_path, output_of(source.rel_path)) if orphans else None
        )
        if entry is None:
            if source.size not in vanished_sizes:
                continue
        elif (entry.size, entry.mtime_ns) == (source.size, source.mtime_ns):
            continue
        wait = stable_in_seconds(
            source, batch.seen.get(source.rel_path), stable_after_ns=context.stable_after_ns, now_ns=now_ns
        )
        if source.size and wait <= 0:
            yield source.rel_path


def _output_of(context: LibraryContext, batch: FolderBatch) -> Callable[[str], str]:
    """Return the output path of a file of the batch: the batch's own where it has them."""
    output_of = output_namer(context.library, context.preset)
    desired = batch.desired
    if not desired:
        return output_of
    return lambda rel_path: desired.get(rel_path) or output_of(rel_path)


def stable_in_seconds(source: SourceFile, seen: SeenFile | None, *, stable_after_ns: int, now_ns: int) -> float:
    """Return how long until the file counts as stable (<= 0: it is)."""
    since = max(source.mtime_ns, source.ctime_ns)
    if seen is not None:
        if (seen.size, seen.mtime_ns) != (source.size, source.mtime_ns):
            since = max(since, now_ns)
        elif seen.changed_at_ns is not None:
            since = max(since, seen.changed_at_ns)
    return (since + stable_after_ns - now_ns) / NS_PER_SECOND


def orphan_of(orphans: Mapping[str, LedgerEntry], rel_path: str, output_path: str) -> LedgerEntry | None:
    """Return the entry a renamed library left for this file and output, or None."""
    orphan = orphans.get(output_path)
    return orphan if orphan is not None and orphan.rel_path == rel_path else None


def same_content(entry: LedgerEntry, source: SourceFile) -> bool:
    """Return whether source still has the content entry recorded (same size and mtime, or fingerprint)."""
    return (entry.size, entry.mtime_ns) == (source.size, source.mtime_ns) or (
        source.fingerprint is not None and source.fingerprint == entry.fingerprint
    )


def _plan_recorded(
    context: LibraryContext,
    source: SourceFile,
    entry: LedgerEntry,
    desired: str,
    *,
    outputs: Container[str],
    reencode: bool,
) -> Action | None:
    """Return the action for a file the ledger knows, or None when it is in sync (the usual case)."""
    name = context.library.name
    if not same_content(entry, source):
        return Transcode(name, source, desired, TranscodeReason.CHANGED)
    if entry.preset_hash.startswith(SKIP_MARK):
        decided = entry.preset_hash[len(SKIP_MARK) :]
        if context.preset_hash is not None and decided not in context.decided_hashes:
            if reencode:
                return Transcode(name, source, desired, TranscodeReason.PRESET_CHANGED)
            return Drift(name, source.rel_path, entry.output_path, DriftReason.PRESET_CHANGED)
        return Skip(name, source.rel_path, "its encode saved too little (larger_output: skip); nothing published")
    if entry.output_path not in outputs:
        return Transcode(name, source, desired, TranscodeReason.OUTPUT_MISSING)
    current_hash = context.preset_hash
    encoded_at = desired  # where a new encode goes (the rules may make it a copy again)
    if entry.preset_hash.startswith(COPY_MARK):  # the source itself, published by a rule: its own extension
        desired = copy_output_path(desired, source.rel_path)
        decided = entry.preset_hash[len(COPY_MARK) :]
        preset_changed = current_hash is not None and decided not in context.decided_hashes
    else:
        preset_changed = current_hash is not None and entry.preset_hash != current_hash
        preset_changed = preset_changed and entry.preset_hash not in context.rule_hashes
    same_container = entry.output_path.rsplit(".", 1)[-1] == desired.rsplit(".", 1)[-1]
    if preset_changed or not same_container:
        if reencode:
            return Transcode(name, source, encoded_at, TranscodeReason.PRESET_CHANGED)
        return Drift(name, source.rel_path, entry.output_path, DriftReason.PRESET_CHANGED)
    if entry.output_path != desired:  # the library's output folder was renamed in the config
        return RenameOutput(name, source, source.rel_path, entry.output_path, desired)
    return None
