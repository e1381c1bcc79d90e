"""The scan memory's rows a pass's planner read for its latest batches, kept for the pass's rules.

The planner reads the remembered files (size, mtime, fingerprint) of each batch of folders it
plans; right after, the rules step needs the fingerprints of that batch's transcodes, from the
very same rows. Reading them again cost a tenth of a pass over 10,000 queued files
(bench/rules.py, part pass). `RecentSeen` stands for the store while the pass plans: it hands the
planner's reads through and keeps the rows of the last two batches (a stretch of actions may
straddle two), so the rules step finds them here; folders it does not hold are read as before.
Memory stays that of two batches; a new `RecentSeen` is made for each pass.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from agent.domain import SeenFile
from agent.plan_from_store import BatchFacts

KEPT_BATCHES = 2


class RecentSeen:
    """A `BatchFacts` that remembers the scan memory's rows of the last batches read through it."""

    def __init__(self, store: BatchFacts) -> None:
        self._store = store
        self._batches: list[tuple[str, dict[str, dict[str, SeenFile]]]] = []  # (library, folder -> rows)

    def seen_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, SeenFile]:
        """Return the store's rows of these folders of library, keeping them as the latest batch."""
        found = self._store.seen_in_folders(library, folders)
        by_folder: dict[str, dict[str, SeenFile]] = {folder: {} for folder in folders}
        for rel_path, seen in found.items():
            by_folder.setdefault(rel_path.rpartition("/")[0], {})[rel_path] = seen
        self._batches = [*self._batches[-(KEPT_BATCHES - 1) :], (library, by_folder)]
        return found

    def kept_in_folders(self, library: str, folders: Collection[str]) -> dict[str, SeenFile]:
        """Return the rows of these folders of library: those kept from the latest batches, the
        others read from the store (and not kept)."""
        found: dict[str, SeenFile] = {}
        missing: list[str] = []
        for folder in folders:
            rows = next((kept[folder] for name, kept in self._batches if name == library and folder in kept), None)
            if rows is None:
                missing.append(folder)
            else:
                found.update(rows)
        if missing:
            found.update(self._store.seen_in_folders(library, missing))
        return found

    def __getattr__(self, name: str) -> Any:
        """Everything else the planner reads, as the store has it."""
        return getattr(self._store, name)
