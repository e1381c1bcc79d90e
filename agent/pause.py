"""Whether a library is paused, and why: decided from a few counts, not from the library's rows. Pure.

Why counts: a pass with bounded memory (`agent.incremental_scan`) must decide the pause before
it plans any batch (a paused library has no other action, and its scan must not become the
vanish breaker's baseline), without reading every file; the counts come from the store's
aggregates there, and from the whole Observation and Ledger in `agent.plan`. What pauses a
library is said in `agent.plan`'s docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.config.models import Library
from agent.domain import ArchiveObservation, SourceStatus


@dataclass(frozen=True)
class PauseCounts:
    """The counts the pause depends on, for one library."""

    files_now: int  # files the walk sees now
    baseline: int  # files at the last good scan; before any, the ledger rows of the library
    hidden_known: int = 0  # of the baseline's files, those an unreadable folder hides now
    # Ledger rows with an output in the library's output folder; only asked when that folder is
    # missing from the archive (0 otherwise changes nothing).
    recorded_outputs: int = 0


def pause_reason(
    library: Library,
    *,
    archive: ArchiveObservation,
    status: SourceStatus,
    detail: str,
    counts: PauseCounts,
    max_vanish_percent: int,
) -> str | None:
    """Return why the library must be paused, or None if it need not be."""
    if not archive.available:
        return f"archive unavailable: {archive.detail}"
    if status is SourceStatus.MISSING:
        return f"source folder missing: {library.source} (not mounted?)"
    if status is SourceStatus.UNREADABLE:
        return f"source folder unreadable: {library.source}: {detail}"
    if counts.recorded_outputs and library.output not in archive.output_folders:
        return (
            f"output folder {library.output!r} is missing from the archive while "
            f"{counts.recorded_outputs} transcodes are recorded in it"
        )
    baseline = counts.baseline
    # Files an unreadable folder hides are still there: they are not counted as vanished.
    vanished = baseline - counts.files_now - counts.hidden_known
    if baseline and vanished * 100 > max_vanish_percent * baseline:
        return (
            f"{vanished} of {baseline} files vanished since the last good scan "
            f"(more than {max_vanish_percent}%); is the disk mounted?"
        )
    return None
