"""The plan seen with the queue: what the agent will really do about each transcode. Pure.

Why: `plan()` compares the disk with the ledger, and the ledger holds only published
encodes; to the planner a file whose job is queued, running, waiting for a retry, dead or
cancelled is still "not encoded", so it says `transcode`. But the queue gives an identity
(library, path, fingerprint, preset) at most one job, and a dead job is not tried again
until an operator says so: printed as `+ transcode (new)`, a dead file would be "pending"
for ever and `hb2r plan` would exit 2 for ever. This step pairs each Transcode with the job
of its identity and says what happens to it; the planner itself is left as it is, and so
is the engine's use of it (it queues every Transcode; the queue refuses duplicates).

| the job of the transcode's identity                       | stage     | pending |
|-----------------------------------------------------------|-----------|---------|
| none; done, its output lost since; or cancelled by the pass | to queue  | yes     |
| queued                                                    | queued    | yes     |
| running                                                   | running   | yes     |
| failed, to be retried after its backoff                   | failed    | yes     |
| dead: out of attempts, until `hb2r retry ID`              | dead      | no      |
| cancelled by an operator, until `hb2r retry ID`           | cancelled | no      |

A job of other content for the same path (the source changed since) is not this
transcode's: the new content gets a job of its own. The fingerprint of a transcode's source
is taken from the plan or from `fingerprints`; without it no job is matched. The preset
identity is taken from `preset_hashes` by library; where it is unknown (HandBrakeCLI cannot
tell its version) the newest job of the same content stands for it.

Choices: only the jobs of planned transcodes are shown; a job the plan no longer wants (its
file is being written again, or vanished) is cancelled by the next pass and is history, as
is a dead job of content since replaced; `hb2r jobs` lists them all. A queued job of a
library an operator paused is still pending: the agent does it once the library is resumed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import Protocol

from agent.domain import (
    CHANGES,
    Adopt,
    Copy,
    Drift,
    PauseLibrary,
    Plan,
    RenameOutput,
    Skip,
    Transcode,
    UserChange,
    Wait,
)

FileKey = tuple[str, str]  # (library, rel_path)


class JobView(Protocol):
    """What this module reads of a job (`agent.store.jobs.Job` has it)."""

    @property
    def id(self) -> int: ...
    @property
    def library(self) -> str: ...
    @property
    def rel_path(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def preset_hash(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def not_before(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def progress(self) -> float | None: ...
    @property
    def cancelled_by(self) -> str | None: ...


class Stage(StrEnum):
    """Where a planned transcode stands in the queue."""

    TO_QUEUE = "to queue"
    QUEUED = "queued"
    RUNNING = "running"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


PENDING_STAGES = frozenset({Stage.TO_QUEUE, Stage.QUEUED, Stage.RUNNING, Stage.FAILED})
# Stages that wait for an operator: the job's id is what `hb2r retry` takes.
NEEDS_RETRY = frozenset({Stage.DEAD, Stage.CANCELLED})

_STAGE_OF_STATE = {
    "queued": Stage.QUEUED,
    "running": Stage.RUNNING,
    "failed": Stage.FAILED,
    "dead": Stage.DEAD,
    "cancelled": Stage.CANCELLED,
}

# The counts of a plan, in the order a person reads them: (key, what is counted). The key of
# transcodes not queued yet stays "transcode", as before the queue was looked at.
_COUNTED: tuple[tuple[str, type | Stage], ...] = (
    ("transcode", Stage.TO_QUEUE),
    ("queued", Stage.QUEUED),
    ("running", Stage.RUNNING),
    ("failed", Stage.FAILED),
    ("dead", Stage.DEAD),
    ("cancelled", Stage.CANCELLED),
    ("copy", Copy),
    ("rename", RenameOutput),
    ("adopt", Adopt),
    ("wait", Wait),
    ("drift", Drift),
    ("skip", Skip),
    ("paused", PauseLibrary),
    ("user", UserChange),
)
COUNT_KEYS = tuple(key for key, _ in _COUNTED)


@dataclass(frozen=True)
class QueuedPlan:
    """A Plan and, for each of its transcodes that has one, the job of its identity."""

    plan: Plan
    jobs: Mapping[FileKey, JobView] = field(default_factory=dict)

    def job_of(self, action: Transcode) -> JobView | None:
        return self.jobs.get((action.library, action.source.rel_path)) if self.jobs else None

    def stage_of(self, action: Transcode) -> Stage:
        job = self.job_of(action)
        if job is None or (job.state == "cancelled" and job.cancelled_by != "operator"):
            return Stage.TO_QUEUE  # the engine's own cancels are undone when the file is wanted again
        return _STAGE_OF_STATE.get(job.state, Stage.TO_QUEUE)

    @cached_property
    def stages(self) -> Counter[Stage]:
        if not self.jobs:  # the usual case on a big first plan: spare 100,000 lookups
            return Counter({Stage.TO_QUEUE: self.plan.count(Transcode)})
        return Counter(self.stage_of(action) for action in self.plan.actions if isinstance(action, Transcode))

    @property
    def pending(self) -> bool:
        """Whether the agent has work left that it will do by itself (waiting files count)."""
        if any(self.stages[stage] for stage in PENDING_STAGES):
            return True
        return any(isinstance(action, CHANGES) and not isinstance(action, Transcode) for action in self.plan.actions)

    def counts(self) -> dict[str, int]:
        """Return every count key (COUNT_KEYS, in order) with its number, 0 included."""
        return {
            key: self.stages[counted] if isinstance(counted, Stage) else self.plan.count(counted)
            for key, counted in _COUNTED
        }


def files_with_jobs(plan: Plan, jobs: Iterable[JobView]) -> set[FileKey]:
    """Return the (library, path) of the transcodes whose file has a job: the only ones whose
    fingerprint `with_jobs` needs (reading it for every new file would cost a pass)."""
    with_job = {(job.library, job.rel_path) for job in jobs}
    return {
        (action.library, action.source.rel_path)
        for action in plan.actions
        if isinstance(action, Transcode) and (action.library, action.source.rel_path) in with_job
    }


def with_jobs(
    plan: Plan,
    jobs: Iterable[JobView],
    *,
    fingerprints: Mapping[FileKey, str],
    preset_hashes: Mapping[str, str],
) -> QueuedPlan:
    """Given the plan, the jobs that are not done, the fingerprints of the transcodes' sources
    (where the plan lacks them) and each library's preset identity (where known), return the
    plan with each transcode's job (see the module docstring)."""
    by_file: dict[FileKey, list[JobView]] = {}
    for job in jobs:
        if job.state != "done":
            by_file.setdefault((job.library, job.rel_path), []).append(job)
    matched: dict[FileKey, JobView] = {}
    for action in plan.actions:
        if not isinstance(action, Transcode):
            continue
        key = (action.library, action.source.rel_path)
        candidates = by_file.get(key)
        content = action.source.fingerprint or fingerprints.get(key)
        if not candidates or content is None:
            continue
        # a preset a rule or `hdr:` chose has an identity of its own: the content alone pairs the job
        preset = preset_hashes.get(action.library) if action.preset is None else None
        same = [
            job for job in candidates if job.fingerprint == content and (preset is None or job.preset_hash == preset)
        ]
        if same:
            matched[key] = max(same, key=lambda job: job.id)
    return QueuedPlan(plan, matched)
