"""Whether a pass with bounded memory pauses a library: decided from the store's counts, as the agent's
pass decides it, for the tests that plan the way such a pass does (tests/support/plan_builders.py,
tests/integration/incremental_pass.py)."""

from __future__ import annotations

from agent.config.models import Config, Library
from agent.domain import ArchiveObservation, LibraryObservation
from agent.pause import pause_reason
from agent.plan_from_store import pause_counts
from agent.store.sqlite import SqliteStore


def pause_from_store(
    store: SqliteStore,
    *,
    config: Config,
    library: Library,
    observed: LibraryObservation,
    archive: ArchiveObservation,
    hidden: int,
) -> str | None:
    """Return why library is paused (or None), given this walk and the counts the store kept."""
    counts = pause_counts(
        store, library, files_now=len(observed.files), hidden=hidden,
        output_folder_present=library.output in archive.output_folders,
    )  # fmt: skip
    return pause_reason(
        library, archive=archive, status=observed.status, detail=observed.detail, counts=counts,
        max_vanish_percent=config.scan.max_vanish_percent,
    )  # fmt: skip
