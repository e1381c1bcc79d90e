"""What the encodes finished since a moment saved: for the "queue drained" notification's "today".

Read from the jobs done since then (the `jobs_by_update` index) joined to their ledger rows by
file and content, so an output replaced since (the source changed again) is not counted, and
adopted outputs (not encoded by hb2r) never are.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from agent.store.sql import Database
from agent.timestamps import stamp


class Saving(NamedTuple):
    files: int
    input_bytes: int
    output_bytes: int

    @property
    def saved_bytes(self) -> int:
        return self.input_bytes - self.output_bytes


def saved_since(database: Database, since: datetime) -> Saving:
    """Return how many files were encoded since `since` (aware) and their source and output bytes."""
    row = database.execute(
        """
        SELECT count(*), coalesce(sum(ledger.size), 0), coalesce(sum(ledger.output_size), 0)
        FROM jobs JOIN ledger ON ledger.library = jobs.library AND ledger.rel_path = jobs.rel_path
            AND ledger.fingerprint = jobs.fingerprint
        WHERE jobs.updated_at >= ? AND jobs.state = 'done' AND ledger.origin = 'encoded'
            AND ledger.output_size IS NOT NULL
        """,
        (stamp(since),),
    ).fetchone()
    return Saving(0, 0, 0) if row is None else Saving(int(row[0]), int(row[1]), int(row[2]))
