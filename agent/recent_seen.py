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

from collections.abc import Collection, Iterator, Sequence

from agent.domain import LedgerEntry, SeenFile
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

    def ledger_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, LedgerEntry]:
        return self._store.ledger_in_folders(library, folders)

    def outputs_present(self, paths: Collection[str]) -> set[str]:
        return self._store.outputs_present(paths)

    def rows_holding_outputs(self, paths: Collection[str], *, other_than: Collection[str]) -> dict[str, LedgerEntry]:
        return self._store.rows_holding_outputs(paths, other_than=other_than)

    def vanished_sizes(self, library: str, sizes: Collection[int]) -> set[int]:
        return self._store.vanished_sizes(library, sizes)

    def vanished_with_fingerprints(
        self, library: str, fingerprints: Collection[str], *, hidden: tuple[str, ...] = ()
    ) -> dict[str, LedgerEntry]:
        return self._store.vanished_with_fingerprints(library, fingerprints, hidden=hidden)

    def vanished_rows(self, library: str) -> Iterator[LedgerEntry]:
        return self._store.vanished_rows(library)

    def load_file_counts(self) -> dict[str, int]:
        return self._store.load_file_counts()

    def ledger_count(self, library: str) -> int:
        return self._store.ledger_count(library)

    def count_under(self, library: str, prefixes: Sequence[str], *, remembered: bool) -> int:
        return self._store.count_under(library, prefixes, remembered=remembered)

    def outputs_recorded_in(self, library: str, output_folder: str) -> int:
        return self._store.outputs_recorded_in(library, output_folder)
