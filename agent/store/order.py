"""The queue's order: which waiting job starts next, within a library and across libraries.

An operator says per library which of its jobs go first (`order:` oldest, the default and
hb2r's order before this setting; newest; smallest or largest source), and how libraries
take turns (`order_across:`): `listed` takes the first library in the config's list that has a
runnable job (today's behaviour), `mixed` compares every library's next job by the top-level
`order:` and takes the winner. A job an admin moved to the front goes before all of them.

Every choice reads an index and stops at the first row: a queue may hold a million jobs, and
the dispatcher asks every few seconds. Oldest and newest read `jobs_waiting` (library,
created_at) forwards or backwards; smallest and largest read `jobs_waiting_by_size` (library,
source_size); the front is `jobs_fronted`, which holds only waiting jobs moved to the front.
Ties go to the lower id (oldest) and, for newest and largest, to the higher id, so each order
is one direction of one index. The source size is taken from the fingerprint (`size:hash`)
when the job is queued; a job whose fingerprint carries no size counts as 0 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Order = Literal["oldest", "newest", "smallest", "largest"]
Across = Literal["listed", "mixed"]
ORDERS: tuple[Order, ...] = ("oldest", "newest", "smallest", "largest")

# The ORDER BY of each order (constants: no input reaches SQL text).
ORDER_BY: dict[str, str] = {
    "oldest": "created_at, id",
    "newest": "created_at DESC, id DESC",
    "smallest": "source_size, id",
    "largest": "source_size DESC, id DESC",
}


@dataclass(frozen=True)
class QueueOrder:
    """How the queue is ordered: `within` each library (others: `default`), and `across` libraries."""

    default: Order = "oldest"
    within: Mapping[str, Order] = field(default_factory=dict)
    across: Across = "listed"

    def of(self, library: str) -> str:
        """Return the ORDER BY of library's jobs."""
        return ORDER_BY[self.within.get(library, self.default)]

    @property
    def between(self) -> str:
        """Return the ORDER BY that compares the next jobs of several libraries."""
        return ORDER_BY[self.default]


def source_size(fingerprint: str) -> int:
    """Given a fingerprint (`size:hash`), return the size it carries; 0 if it carries none."""
    size, colon, _ = fingerprint.partition(":")
    return int(size) if colon and size.isdigit() else 0
