"""One pass over a library, as a full walk and as an incremental one, printed as JSON (a child
process of tests/integration/test_incremental_scan.py, so that under root it can run without
the file-permission bypass and a folder with mode 000 is unreadable to it).

    python tests/integration/incremental_pass.py CONFIG NOW_NS

Both walks are planned against the same ledger; the incremental one is then recorded, as the
agent records a pass (`Store.record_walk`; not when the library is paused), and planned a
third time as a pass with bounded memory plans it: the pause from the store's counts before
the walk is recorded, then batch by batch from the store (`agent.plan_from_store`), reading
the fingerprints a batch needs from the disk (`agent.observe.fingerprints_from_disk`).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent.archive_walk import walk_archive
from agent.config import load_config
from agent.config.models import Config, Library
from agent.domain import Action, ArchiveObservation, Ledger, LibraryObservation, Observation, PauseLibrary
from agent.incremental_scan import scan_incrementally, what_to_record
from agent.observe import fingerprints_from_disk, with_fingerprints
from agent.plan import fingerprints_needed, plan
from agent.plan_from_store import by_folder, library_context_of, plan_library_from_store
from agent.scan import LibraryWalk, walk_library
from agent.store.sqlite import SqliteStore, open_store
from tests.support.store_pass import pause_from_store

PRESET_HASHES = {"tv": "tv-preset"}


def main(config_path: Path, now_ns: int) -> None:
    config = load_config(config_path).config
    [library] = config.libraries
    excluded = (config.paths.archive, config.paths.state_dir)
    store = open_store(config.paths.state_dir)
    try:
        ledger = store.load_ledger()
        archive_walk = walk_archive(config, now_ns=now_ns)
        archive = archive_walk.observation
        store.record_archive(folders=archive_walk.folders, listed=archive_walk.listed or {})
        full = walk_library(library, excluded=excluded, now_ns=now_ns)
        incremental = scan_incrementally(library, store, excluded=excluded, now_ns=now_ns)
        full_plan = _plan(config, full.observation, archive, ledger, now_ns)
        incremental_plan = _plan(config, incremental.observation, archive, ledger, now_ns)
        batch_plan = _plan_from_store(config, library, incremental, archive, store, now_ns)
    finally:
        store.close()
    print(
        json.dumps(
            {
                "full": _shown(full.observation),
                "incremental": _shown(incremental.observation),
                "full_plan": [repr(action) for action in full_plan],
                "incremental_plan": [repr(action) for action in incremental_plan],
                "batch_plan": [repr(action) for action in batch_plan],
                "listed": sorted(incremental.listed),
            }
        )
    )


def _plan(
    config: Config, observed: LibraryObservation, archive: ArchiveObservation, ledger: Ledger, now_ns: int
) -> list[Action]:
    observation = Observation({observed.library: observed}, archive, PRESET_HASHES)
    needed = fingerprints_needed(config, observation, ledger, now_ns=now_ns)
    observation = with_fingerprints(config, observation, needed, ledger)
    return list(plan(config, observation, ledger, now_ns=now_ns).actions)


def _plan_from_store(
    config: Config, library: Library, walk: LibraryWalk, archive: ArchiveObservation, store: SqliteStore, now_ns: int
) -> list[Action]:
    """Plan as a pass with bounded memory: pause from counts, record the walk, then batch by batch."""
    observed = walk.observation
    context = library_context_of(config, library, observed, PRESET_HASHES)
    reason = pause_from_store(
        store, config=config, library=library, observed=observed, archive=archive, hidden=context.hidden
    )
    if reason is not None:
        return [PauseLibrary(library.name, reason)]
    listed, fingerprints = what_to_record(walk, observed.files)
    store.record_walk(
        library=library.name,
        listed=listed,
        folders=walk.folders,
        fingerprints=fingerprints,
        now_ns=now_ns,
        scanned_at=datetime.now(UTC).isoformat(),
    )
    return list(
        plan_library_from_store(
            context, store, folders=by_folder(observed.files), configured={library.name},
            problems=observed.problems, now_ns=now_ns, fill_fingerprints=fingerprints_from_disk(library),
        )
    )  # fmt: skip


def _shown(observed: LibraryObservation) -> dict[str, object]:
    return {
        "status": str(observed.status),
        "detail": observed.detail,
        "files": sorted(repr(source) for source in observed.files),
        "problems": [repr(problem) for problem in observed.problems],
        "unreadable": list(observed.unreadable_dirs),
    }


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
