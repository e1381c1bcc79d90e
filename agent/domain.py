"""The facts the planner decides from and the actions it returns, as frozen dataclasses.

Three inputs meet in `plan()`: the Config (desired), the Observation (what the disk holds
now) and the Ledger (what hb2r remembers: what it encoded, from which content, with which
preset; what it saw on earlier scans; the users it has). Nothing here does I/O, so the
planner's tests are tables of these values.

Paths inside a library are POSIX-style and relative to its source (`Show/S01E01.mkv`);
outputs are relative to the archive (`TV/Show/S01E01.mkv`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import ClassVar, NamedTuple


class SourceFile(NamedTuple):
    """One candidate video as scanned. A NamedTuple, not a dataclass: a pass makes one per
    file (100,000 in a big library) and this builds three times faster."""

    rel_path: str
    size: int
    mtime_ns: int
    ctime_ns: int
    fingerprint: str | None = None


class SourceStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"
    UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class ScanProblem:
    rel_path: str
    message: str


@dataclass(frozen=True)
class LibraryObservation:
    library: str
    status: SourceStatus
    files: tuple[SourceFile, ...] = ()
    problems: tuple[ScanProblem, ...] = ()
    unreadable_dirs: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class ArchiveObservation:
    available: bool
    outputs: frozenset[str] = frozenset()
    output_folders: frozenset[str] = frozenset()
    detail: str = ""


@dataclass(frozen=True)
class Observation:
    libraries: Mapping[str, LibraryObservation]
    archive: ArchiveObservation
    # Preset name -> identity hash. Empty when nothing in the ledger needs comparing,
    # which spares a HandBrakeCLI start-up on every `hb2r plan`.
    preset_hashes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    library: str
    rel_path: str
    fingerprint: str
    size: int
    mtime_ns: int
    preset_hash: str
    output_path: str


@dataclass(frozen=True, slots=True)
class SeenFile:
    """What an earlier scan saw of a file; `changed_at_ns` is when a scan last saw it change.

    `ctime_ns` lets a pass give the file back without a stat (agent.incremental_scan); it is no
    fact the planner decides from, so it takes no part in comparisons (None: not recorded yet)."""

    size: int
    mtime_ns: int
    fingerprint: str | None
    changed_at_ns: int | None
    ctime_ns: int | None = field(default=None, compare=False)


class FolderVisit(NamedTuple):
    """A folder a walk reached (`rel_path` "" is the source folder) and what its stat said.
    `listed_at_ns` is when it was last listed: now if this walk listed it."""

    rel_path: str
    identity: str  # "dev:ino"
    mtime_ns: int
    ctime_ns: int
    via_link: bool
    listed_at_ns: int
    problems: bool = False  # its listing failed or named a file it could not take: list it every pass


class RememberedFolder(NamedTuple):
    """What the scan memory holds of a folder (see agent.incremental_scan)."""

    identity: str
    mtime_ns: int
    ctime_ns: int
    via_link: bool
    problems: bool
    file_count: int
    listed_at_ns: int
    newest_change_ns: int  # the latest mtime, ctime or seen change of its files; 0 if none


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    role: str
    password_hash: str = field(repr=False)
    generated: bool = False  # the first admin hb2r made because the config declares no users


@dataclass(frozen=True)
class Ledger:
    entries: tuple[LedgerEntry, ...] = ()
    seen: Mapping[tuple[str, str], SeenFile] = field(default_factory=dict)
    file_counts: Mapping[str, int] = field(default_factory=dict)  # library -> files at its last good scan
    users: tuple[UserRecord, ...] = ()


class TranscodeReason(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    OUTPUT_MISSING = "output missing"
    PRESET_CHANGED = "preset changed"


class DriftReason(StrEnum):
    PRESET_CHANGED = "preset changed"
    SOURCE_VANISHED = "source vanished"


# The per-file actions are NamedTuples for the same reason as SourceFile: a plan of a big
# library makes 100,000 of them, and a frozen dataclass builds four times slower. Their
# fields differ in number or type, so two actions of different kinds never compare equal.


class Transcode(NamedTuple):
    """Encode a source. `why` says which rule chose it (`agent.rules`, "" before rules decided);
    `preset` names the preset a rule or `hdr:` asked for instead of the library's (None: the library's)."""

    library: str
    source: SourceFile
    output_path: str
    reason: TranscodeReason
    why: str = ""
    preset: str | None = None

    @property
    def kind(self) -> str:
        return "transcode"


class RenameOutput(NamedTuple):
    library: str
    source: SourceFile
    from_rel_path: str
    from_output_path: str
    output_path: str

    @property
    def kind(self) -> str:
        return "rename"


class Adopt(NamedTuple):
    """Record an output that is already in place. With `from_library`, it is hb2r's own output,
    recorded under a library name the config no longer has (the library was renamed): its
    ledger entry is carried over to `library` as it is."""

    library: str
    source: SourceFile
    output_path: str
    from_library: str | None = None

    @property
    def kind(self) -> str:
        return "adopt"


class Wait(NamedTuple):
    library: str
    rel_path: str
    stable_in_seconds: float

    @property
    def kind(self) -> str:
        return "wait"


class Drift(NamedTuple):
    library: str
    rel_path: str
    output_path: str
    reason: DriftReason

    @property
    def kind(self) -> str:
        return "drift"


class Copy(NamedTuple):
    """Publish the source itself, as it is (a rule or `hdr:` said so; `why` says which). Its
    output keeps the source's extension: the bytes are the source's, not the preset's container."""

    library: str
    source: SourceFile
    output_path: str
    why: str
    rule: str | None

    @property
    def kind(self) -> str:
        return "copy"


class Skip(NamedTuple):
    """A file that will not be encoded until a person acts (empty, bad name, output taken)."""

    library: str
    rel_path: str
    reason: str
    by_rule: bool = False  # the library's `rules:` or `hdr:` chose it (counted per library in /api/status)

    @property
    def kind(self) -> str:
        return "skip"


@dataclass(frozen=True)
class PauseLibrary:
    kind: ClassVar[str] = "pause"
    library: str
    reason: str


class UserChangeKind(StrEnum):
    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


@dataclass(frozen=True)
class UserChange:
    kind: ClassVar[str] = "user"
    change: UserChangeKind
    name: str
    role: str
    password_hash: str = field(repr=False, default="")


Action = Transcode | Copy | RenameOutput | Adopt | Wait | Drift | Skip | PauseLibrary | UserChange

# Actions that change something; the others only report.
CHANGES = (Transcode, Copy, RenameOutput, Adopt, Wait, UserChange)


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]

    @property
    def pending(self) -> bool:
        """Whether anything is left to do (waiting files count: work will follow), before the
        queue is asked; `agent.queued_plan.QueuedPlan.pending` knows dead and cancelled jobs."""
        return any(isinstance(action, CHANGES) for action in self.actions)

    def count(self, action_type: type) -> int:
        return self.counts.get(action_type, 0)

    @cached_property
    def counts(self) -> dict[type, int]:
        return dict(Counter(type(action) for action in self.actions))
