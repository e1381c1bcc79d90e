"""The queue's order: which waiting job starts next, within a library and across libraries.

An operator says per library which of its jobs go first (`order:` oldest, the default and
hb2r's order before this setting; newest; smallest or largest source; or the largest
estimated saving, `agent.saving_estimate`), and how libraries
take turns (`order_across:`): `listed` takes the first library in the config's list that has a
runnable job (today's behaviour), `mixed` compares every library's next job by the top-level
`order:` and takes the winner. A job an admin moved to the front goes before all of them.

Every choice reads an index and stops at the first row: a queue may hold a million jobs, and
the dispatcher asks every few seconds. Oldest and newest read `jobs_waiting` (library,
created_at) forwards or backwards; smallest and largest read `jobs_waiting_by_size` (library,
source_size); saving reads `jobs_waiting_by_saving` (library, saving, the estimate made when
the job was queued); the front is `jobs_fronted`, which holds only waiting jobs moved to the front.
Ties go to the lower id (oldest) and, for newest, largest and saving, to the higher id, so each order
is one direction of one index. The source size is taken from the fingerprint (`size:hash`)
when the job is queued; a job whose fingerprint carries no size counts as 0 bytes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from agent.store.sql import Database

Order = Literal["oldest", "newest", "smallest", "largest", "saving"]
Across = Literal["listed", "mixed"]
ORDERS: tuple[Order, ...] = ("oldest", "newest", "smallest", "largest", "saving")

# The ORDER BY of each order (constants: no input reaches SQL text).
ORDER_BY: dict[str, str] = {
    "oldest": "created_at, id",
    "newest": "created_at DESC, id DESC",
    "smallest": "source_size, id",
    "largest": "source_size DESC, id DESC",
    "saving": "saving DESC, id DESC",
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


def first_fronted(database: Database, *, libraries: Collection[str], stamp: str, lock: str) -> int | None:
    """Return the id of the runnable job of `libraries` moved to the front last (locked on PostgreSQL
    by `lock`), or None. Reads `jobs_fronted`, which holds only waiting jobs moved to the front."""
    if not libraries:
        return None
    # SQLite must be told to use the small partial index (`INDEXED BY`); PostgreSQL picks it itself.
    indexed = " INDEXED BY jobs_fronted" if database.dialect == "sqlite" else ""
    rows = database.execute(_FRONTED.replace("{INDEXED}", indexed) + lock, (stamp,)).fetchall()
    for job_id, library, rel_path in rows:
        if library in libraries and database.execute(_FILE_RUNNING, (library, rel_path)).fetchone() is None:
            return int(job_id)
    return None


def first_in_library(database: Database, *, library: str, stamp: str, order_by: str, lock: str) -> int | None:
    """Return the id of library's next runnable job in `order_by` (locked on PostgreSQL by `lock`), or None.

    Read in the order of a partial index and stopping at the first row; the rare job whose file
    has another job running is skipped by a second, indexed look-up (a NOT EXISTS in the one query
    would make PostgreSQL join every waiting job of the library).
    """
    skipped: list[int] = []
    while True:
        marks = ", ".join(["?"] * len(skipped))
        query = (
            _FIRST_WAITING.replace("{SKIPPED}", f" AND id NOT IN ({marks})" if skipped else "").replace(
                "{ORDER}", order_by
            )
            + lock
        )
        row = database.execute(query, (library, stamp, *skipped)).fetchone()
        if row is None:
            return None
        if database.execute(_FILE_RUNNING, (library, row[1])).fetchone() is None:
            return int(row[0])
        skipped.append(int(row[0]))


def library_sequence(
    database: Database, *, waiting: list[str], library_order: Sequence[str], order: QueueOrder, stamp: str
) -> list[str]:
    """Return the waiting libraries in the order they take turns: `listed` ones as listed, then the
    rest by their next job; `mixed`: all of them by their next job (in the top-level order)."""
    listed = [library for library in dict.fromkeys(library_order) if library in waiting and order.across == "listed"]
    rest = [library for library in waiting if library not in listed]
    if len(rest) > 1:
        firsts = {
            library: first_in_library(database, library=library, stamp=stamp, order_by=order.of(library), lock="")
            for library in rest
        }
        ranked = _in_order(database, [job_id for job_id in firsts.values() if job_id is not None], order.between)
        rest = [library for job_id in ranked for library, first in firsts.items() if first == job_id]
    return listed + rest


def _in_order(database: Database, job_ids: list[int], order_by: str) -> list[int]:
    """Return job_ids in `order_by`."""
    if not job_ids:
        return []
    query = f"SELECT id FROM jobs WHERE id IN ({{MARKS}}) ORDER BY {order_by}"  # noqa: S608 - constants only
    rows = database.execute(query.replace("{MARKS}", ", ".join(["?"] * len(job_ids))), job_ids).fetchall()
    return [int(row[0]) for row in rows]


_RUNNABLE = "state IN ('queued', 'failed') AND (state = 'queued' OR not_before IS NULL OR not_before <= ?)"
_FIRST_WAITING = f"""
    SELECT id, rel_path FROM jobs
    WHERE library = ? AND {_RUNNABLE}{{SKIPPED}}
    ORDER BY {{ORDER}}
    LIMIT 1
"""  # noqa: S608 - constants only
_FRONTED = f"""
    SELECT id, library, rel_path FROM jobs{{INDEXED}}
    WHERE priority > 0 AND {_RUNNABLE}
    ORDER BY priority DESC
"""  # noqa: S608 - constants only
_FILE_RUNNING = "SELECT 1 FROM jobs WHERE library = ? AND rel_path = ? AND state = 'running' LIMIT 1"
