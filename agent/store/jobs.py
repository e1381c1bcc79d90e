"""The job queue: one row per (library, relative path, fingerprint, preset hash) identity.

Design notes:
- Enqueueing is idempotent because the reconcile loop is level-triggered: every pass asks
  again for each transcode it still wants. An identity that has a job gets no second one,
  whatever its state. A done job means that content is encoded (a pass that read the ledger
  just before the job finished must not encode it again); a dead or failed one waits for its
  fingerprint to change or for an operator (`hb2r retry`). One exception: a job the *engine*
  cancelled goes back to the queue, attempts and last error kept. The engine cancels jobs
  the plan stops wanting (a file being written again, a file that vanished); when the same
  content is wanted again it must not be refused forever. A job an *operator* cancelled
  stays cancelled until retried or until its source changes (a new fingerprint is a new
  identity): `cancelled_by` tells the two apart, and `operator_cancelled()` lists them so
  that a plan can show them as what they are rather than as pending work.
- A new identity for a path supersedes the old content: its queued or failed job is
  cancelled. A running one is left alone: the engine holds its process and decides.
- At most one encode per file: `next_runnable` holds a job back while another job for the
  same file runs.
- States: the transition table in `agent.store.transitions` is the one definition. Every
  function here that changes a job's state names its event; its SQL guard and its refusal
  (JobStateError naming the job, its state and the event) come from that table.
- Time is an argument (`now`, an aware datetime), never read here. It is stored as ISO-8601
  UTC with microseconds, fixed width, so that text order is time order in SQL.
- No function begins or commits a transaction: each runs inside the caller's
  (`agent.store.db.transaction`, as the engine does to finish a job together with its ledger
  row) or, on an autocommit connection, statement by statement. Every state change is one
  guarded UPDATE and so atomic by itself; `enqueue` is two statements (insert, then cancel
  the superseded job), so batches of it belong in one transaction.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from agent.retry import backoff_delay
from agent.store.transitions import (
    JobError,
    JobEvent,
    JobNotFound,
    JobState,
    JobStateError,
    refusal,
    sources,
    sql_states,
    target,
)

if TYPE_CHECKING:
    from agent.config.models import Retry

STDERR_LINES = 50


class Job(NamedTuple):
    """One row of the queue. A NamedTuple, not a frozen dataclass: a page of 100 jobs is built
    for every GET /api/jobs, and a frozen dataclass's __init__ costs several times more."""

    id: int
    library: str
    rel_path: str
    fingerprint: str
    preset_hash: str
    output_path: str
    reason: str
    state: JobState
    attempts: int
    not_before: str | None
    error: str | None
    stderr_tail: str | None
    progress: float | None  # percent, 0-100
    created_at: str
    updated_at: str
    cancelled_by: str | None = None  # CancelledBy of a cancelled job; None for other states


class CancelledBy(StrEnum):
    OPERATOR = "operator"  # stays cancelled until retried or the source changes
    ENGINE = "engine"  # the plan stopped wanting it: queued again when wanted again


_FIELDS = Job._fields
_STATE = _FIELDS.index("state")
__all__ = ["Job", "JobError", "JobEvent", "JobNotFound", "JobState", "JobStateError"]
# The guards of the state changes below, from the transition table (constants, not input).
_START = f"state IN {sql_states(JobEvent.START)}"
_FINISH = f"state IN {sql_states(JobEvent.FINISH)}"
_FAIL = f"state IN {sql_states(JobEvent.FAIL)}"
_REQUEUE = f"state IN {sql_states(JobEvent.REQUEUE)}"
_CANCEL = f"state IN {sql_states(JobEvent.CANCEL)}"
_RETRY = f"state IN {sql_states(JobEvent.RETRY)}"


def enqueue(
    connection: sqlite3.Connection,
    *,
    library: str,
    rel_path: str,
    fingerprint: str,
    preset_hash: str,
    output_path: str,
    reason: str,
    now: datetime,
) -> Job | None:
    """Queue a transcode of this identity; return the job, or None if the identity already has one.

    A job of the same identity that the engine cancelled is queued again and returned; so is a
    done one, since the plan asks for a done identity again only when its output went missing.
    One an operator cancelled is left alone (None). A queued or failed job of another identity
    for the same (library, rel_path) is cancelled (by the engine).
    """
    stamp = _stamp(now)
    cursor = connection.execute(
        """
        INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, state, attempts,
                          created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?)
        ON CONFLICT (library, rel_path, fingerprint, preset_hash) DO UPDATE SET
            state = 'queued', reason = excluded.reason, output_path = excluded.output_path,
            attempts = CASE WHEN jobs.state = 'done' THEN 0 ELSE jobs.attempts END,
            not_before = NULL, progress = NULL, cancelled_by = NULL, updated_at = excluded.updated_at
        WHERE jobs.state = 'done' OR (jobs.state = 'cancelled' AND jobs.cancelled_by IS NOT 'operator')
        RETURNING *
        """,
        (library, rel_path, fingerprint, preset_hash, output_path, reason, stamp, stamp),
    )
    job = _one(cursor)
    if job is None:
        return None
    connection.execute(
        """
        UPDATE jobs SET state = 'cancelled', cancelled_by = 'engine', not_before = NULL, progress = NULL,
                        updated_at = ?
        WHERE library = ? AND rel_path = ? AND id != ? AND state IN ('queued', 'failed')
        """,
        (stamp, library, rel_path, job.id),
    )
    return job


def next_runnable(
    connection: sqlite3.Connection,
    *,
    now: datetime,
    library_order: Sequence[str],
    exclude_libraries: Collection[str] = (),
) -> Job | None:
    """Return the job to start next, or None.

    Runnable: queued, or failed with `not_before` passed; not in an excluded library; no other job
    for the same file running. First by library in `library_order` (others after them), then oldest.
    """
    # Indexed queries only (the partial index `jobs_waiting` holds just the queued and failed
    # jobs): the dispatcher asks every few seconds, also with a long queue or a paused library.
    stamp = _stamp(now)
    excluded = set(exclude_libraries)
    waiting = [library for library in _waiting_libraries(connection) if library not in excluded]
    for library in dict.fromkeys(library_order):
        if library in waiting:
            job = _one(connection.execute(_NEXT_IN_LIBRARY, {"library": library, "now": stamp}))
            if job is not None:
                return job
    unlisted = (
        _one(connection.execute(_NEXT_IN_LIBRARY, {"library": library, "now": stamp}))
        for library in waiting
        if library not in library_order
    )
    return min((job for job in unlisted if job is not None), key=lambda job: (job.created_at, job.id), default=None)


def _waiting_libraries(connection: sqlite3.Connection) -> list[str]:
    """Return the libraries with queued or failed jobs: one index seek per library."""
    rows = connection.execute(
        """
        WITH RECURSIVE waiting (library) AS (
            SELECT min(library) FROM jobs INDEXED BY jobs_waiting WHERE state IN ('queued', 'failed')
            UNION ALL
            SELECT (
                SELECT min(library) FROM jobs INDEXED BY jobs_waiting
                WHERE state IN ('queued', 'failed') AND library > waiting.library
            )
            FROM waiting WHERE waiting.library IS NOT NULL
        )
        SELECT library FROM waiting WHERE library IS NOT NULL
        """
    )
    return [library for (library,) in rows]


_NEXT_IN_LIBRARY = """
    SELECT * FROM jobs
    WHERE library = :library AND state IN ('queued', 'failed')
      AND (state = 'queued' OR coalesce(not_before <= :now, 1))
      AND NOT EXISTS (
          SELECT 1 FROM jobs AS other
          WHERE other.library = jobs.library AND other.rel_path = jobs.rel_path AND other.state = 'running'
      )
    ORDER BY created_at, id
    LIMIT 1
"""


def mark_running(connection: sqlite3.Connection, job_id: int, *, now: datetime) -> Job:
    """Mark a queued or failed job running (its last error cleared); return it.

    Raise JobNotFound or JobStateError if there is no such job or it is in another state.
    """
    cursor = connection.execute(
        f"""
        UPDATE jobs SET state = ?, not_before = NULL, error = NULL, stderr_tail = NULL, progress = 0,
                        updated_at = ?
        WHERE id = ? AND {_START}
        RETURNING *
        """,  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.START)), _stamp(now), job_id),
    )
    return _one(cursor) or _refuse(connection, job_id, event=JobEvent.START)


def record_progress(connection: sqlite3.Connection, job_id: int, *, progress: float, now: datetime) -> None:
    """Record a running job's progress in percent (clamped to 0-100); do nothing if it is not running."""
    if not math.isfinite(progress):
        raise ValueError(f"progress must be a finite percentage, got {progress!r}")
    connection.execute(
        "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? AND state = 'running'",
        (min(max(progress, 0.0), 100.0), _stamp(now), job_id),
    )


def mark_done(connection: sqlite3.Connection, job_id: int, *, now: datetime) -> Job:
    """Mark a running job done; return it. Call it in the transaction that records its ledger row.

    Raise JobNotFound or JobStateError if there is no such job or it is not running.
    """
    cursor = connection.execute(
        f"""
        UPDATE jobs SET state = ?, not_before = NULL, progress = 100, updated_at = ?
        WHERE id = ? AND {_FINISH}
        RETURNING *
        """,  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.FINISH)), _stamp(now), job_id),
    )
    return _one(cursor) or _refuse(connection, job_id, event=JobEvent.FINISH)


def mark_failed(
    connection: sqlite3.Connection,
    job_id: int,
    *,
    error: str,
    stderr_tail: Sequence[str],
    retry: Retry,
    now: datetime,
) -> Job:
    """Record a failure of a running job; return it, failed (to retry after a backoff) or dead.

    Its attempts grow by one; at `retry.attempts` the job is dead. Either way the error and the
    last STDERR_LINES lines of stderr are kept (failures that are not counted: `agent.store.failures`).
    Raise JobNotFound or JobStateError if there is no such job or it is not running.
    """
    job = get(connection, job_id)
    if job is None or job.state not in sources(JobEvent.FAIL):
        _refuse(connection, job_id, event=JobEvent.FAIL)
    attempts = job.attempts + 1
    if attempts >= retry.attempts:
        state, not_before = target(JobEvent.EXHAUST), None
    else:
        delay = backoff_delay(attempt=attempts, backoff=retry.backoff, max_backoff=retry.max_backoff)
        state, not_before = target(JobEvent.FAIL), _stamp(now + delay)
    cursor = connection.execute(
        f"""
        UPDATE jobs SET state = ?, attempts = ?, not_before = ?, error = ?, stderr_tail = ?, progress = NULL,
                        updated_at = ?
        WHERE id = ? AND {_FAIL} AND attempts = ?
        RETURNING *
        """,  # noqa: S608 - the guard is built from the transition table's constants
        (str(state), attempts, not_before, error, _tail(stderr_tail), _stamp(now), job_id, job.attempts),
    )
    failed = _one(cursor)
    if failed is None:
        raise JobStateError(
            f"job {job_id} changed while its failure was being recorded", job_id=job_id, event=JobEvent.FAIL
        )
    return failed


def requeue_running(connection: sqlite3.Connection, *, now: datetime) -> list[Job]:
    """Put every running job back in the queue, attempts unchanged (start-up after a crash, shutdown)."""
    cursor = connection.execute(
        f"""
        UPDATE jobs SET state = ?, not_before = NULL, progress = NULL, updated_at = ?
        WHERE {_REQUEUE}
        RETURNING *
        """,  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.REQUEUE)), _stamp(now)),
    )
    return _sorted(cursor)


def cancel(connection: sqlite3.Connection, job_id: int, *, now: datetime, by: CancelledBy = CancelledBy.ENGINE) -> Job:
    """Cancel a queued, running or failed job; return it. Stopping a running encode is the engine's part.

    `by` says who cancelled it: an operator's cancel is not undone by the next pass (see enqueue).
    Raise JobNotFound or JobStateError if there is no such job or it is in another state.
    """
    cursor = connection.execute(
        f"""
        UPDATE jobs SET state = ?, cancelled_by = ?, not_before = NULL, progress = NULL, updated_at = ?
        WHERE id = ? AND {_CANCEL}
        RETURNING *
        """,  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.CANCEL)), str(by), _stamp(now), job_id),
    )
    return _one(cursor) or _refuse(connection, job_id, event=JobEvent.CANCEL)


def operator_cancelled(connection: sqlite3.Connection) -> list[Job]:
    """Return the jobs an operator cancelled that no later job of the same file superseded, oldest first.

    Their files are not pending work: the agent will not encode them until retried or changed.
    """
    cursor = connection.execute(
        """
        SELECT * FROM jobs
        WHERE state = 'cancelled' AND cancelled_by = 'operator'
          AND NOT EXISTS (
              SELECT 1 FROM jobs AS other
              WHERE other.library = jobs.library AND other.rel_path = jobs.rel_path AND other.id > jobs.id
          )
        ORDER BY id
        """
    )
    return _all(cursor)


def waiting(connection: sqlite3.Connection) -> list[tuple[int, str, str]]:
    """Return (id, library, rel_path) of every queued or failed job: cheap enough for every pass."""
    rows = connection.execute("SELECT id, library, rel_path FROM jobs WHERE state IN ('queued', 'failed')")
    return [(int(job_id), str(library), str(rel_path)) for job_id, library, rel_path in rows]


def retry(connection: sqlite3.Connection, job_id: int, *, now: datetime) -> Job:
    """Queue a dead, failed or cancelled job again with no attempts counted; return it.

    Its last error stays until it runs. Raise JobNotFound or JobStateError if there is no such
    job, it is in another state, or another job for the same file is queued, running or failed.
    """
    cursor = connection.execute(
        f"""
        UPDATE jobs SET state = ?, attempts = 0, not_before = NULL, progress = NULL, cancelled_by = NULL,
                        updated_at = ?
        WHERE id = ? AND {_RETRY}
          AND NOT EXISTS (
              SELECT 1 FROM jobs AS other
              WHERE other.library = jobs.library AND other.rel_path = jobs.rel_path AND other.id != jobs.id
                AND other.state IN ('queued', 'running', 'failed')
          )
        RETURNING *
        """,  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.RETRY)), _stamp(now), job_id),
    )
    return _one(cursor) or _refuse(connection, job_id, event=JobEvent.RETRY)


def retry_dead(connection: sqlite3.Connection, *, now: datetime) -> list[Job]:
    """Queue every dead job again with no attempts counted; return them, oldest first.

    A dead job that a later job for the same file superseded (the source or preset changed since),
    or whose file has another job queued, running or failed, is left as it is.
    """
    cursor = connection.execute(
        """
        UPDATE jobs SET state = 'queued', attempts = 0, not_before = NULL, progress = NULL, updated_at = ?
        WHERE state = 'dead'
          AND NOT EXISTS (
              SELECT 1 FROM jobs AS other
              WHERE other.library = jobs.library AND other.rel_path = jobs.rel_path AND other.id != jobs.id
                AND (other.id > jobs.id OR other.state IN ('queued', 'running', 'failed'))
          )
        RETURNING *
        """,
        (_stamp(now),),
    )
    return _sorted(cursor)


def list_jobs(
    connection: sqlite3.Connection, *, state: JobState | None = None, library: str | None = None
) -> list[Job]:
    """Return the jobs, oldest first, only those in `state` and `library` when given."""
    cursor = connection.execute(
        """
        SELECT * FROM jobs
        WHERE (:state IS NULL OR state = :state) AND (:library IS NULL OR library = :library)
        ORDER BY id
        """,
        {"state": None if state is None else str(state), "library": library},
    )
    return _all(cursor)


def get(connection: sqlite3.Connection, job_id: int) -> Job | None:
    return _one(connection.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)))


def counts(connection: sqlite3.Connection) -> dict[JobState, int]:
    """Return the number of jobs in each state, every state present (0 if none)."""
    found = dict(connection.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    return {state: int(found.get(str(state), 0)) for state in JobState}


def counts_by_library(connection: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Return library -> state -> number of jobs (states with none are left out)."""
    result: dict[str, dict[str, int]] = {}
    for library, state, count in connection.execute("SELECT library, state, count(*) FROM jobs GROUP BY 1, 2"):
        result.setdefault(library, {})[state] = int(count)
    return result


def page(
    connection: sqlite3.Connection,
    *,
    state: JobState | None = None,
    library: str | None = None,
    before_id: int | None = None,
    limit: int,
) -> list[Job]:
    """Return up to limit jobs, newest (highest id) first, with ids below before_id when given."""
    cursor = connection.execute(
        """
        SELECT * FROM jobs
        WHERE (:state IS NULL OR state = :state) AND (:library IS NULL OR library = :library)
          AND (:before IS NULL OR id < :before)
        ORDER BY id DESC LIMIT :limit
        """,
        {"state": None if state is None else str(state), "library": library, "before": before_id, "limit": limit},
    )
    return _all(cursor)


def last_change(connection: sqlite3.Connection) -> int:
    """Return the number of the latest change to any job (0 if none): where a reader of changes starts."""
    row = connection.execute("SELECT coalesce(max(change_seq), 0) FROM jobs").fetchone()
    return int(row[0])


def changed_after(connection: sqlite3.Connection, change: int, *, limit: int = 500) -> list[tuple[int, Job]]:
    """Return (change number, job) of the jobs changed after change number `change`, oldest change first.

    Change numbers only grow (triggers number every insert and update), whatever the wall clock
    does: a reader that follows them misses nothing when `updated_at` steps back.
    """
    cursor = connection.execute("SELECT * FROM jobs WHERE change_seq > ? ORDER BY change_seq LIMIT ?", (change, limit))
    if cursor.description is None:
        return []
    names = [column[0] for column in cursor.description]
    change_at = names.index("change_seq")
    pick = itemgetter(*(names.index(name) for name in _FIELDS))
    return [(int(row[change_at]), _job(pick(row))) for row in cursor.fetchall()]


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime (UTC), got the naive {moment!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _tail(lines: Sequence[str]) -> str | None:
    if isinstance(lines, str):  # a whole text is a Sequence[str] too: take its lines, not its characters
        lines = lines.splitlines()
    split = [piece for line in lines for piece in (line.splitlines() or [""])]
    return "\n".join(split[-STDERR_LINES:]) or None


def _refuse(connection: sqlite3.Connection, job_id: int, *, event: JobEvent) -> NoReturn:
    """Raise why job_id could not take event: it does not exist, the transition table does not
    allow event from its state, or (for a retry) another job for the same file is active."""
    job = get(connection, job_id)
    if job is None:
        raise JobNotFound(f"there is no job {job_id}")
    if job.state not in sources(event):
        raise refusal(job_id=job_id, state=job.state, event=event)
    verb = event.verb
    other = connection.execute(
        """
        SELECT id, state FROM jobs
        WHERE library = ? AND rel_path = ? AND id != ? AND state IN ('queued', 'running', 'failed')
        ORDER BY id LIMIT 1
        """,
        (job.library, job.rel_path, job_id),
    ).fetchone()
    if other is not None:
        raise JobStateError(
            f"job {job_id} cannot {verb}: job {other[0]} for the same file is {other[1]}",
            job_id=job_id,
            state=job.state,
            event=event,
        )
    raise JobStateError(
        f"job {job_id} changed while asked to {verb}; try again", job_id=job_id, state=job.state, event=event
    )


def _all(cursor: sqlite3.Cursor) -> list[Job]:
    """Return the cursor's rows (`SELECT *` or `RETURNING *`) as jobs, columns taken by name."""
    if cursor.description is None:
        return []
    names = [column[0] for column in cursor.description]
    pick = itemgetter(*(names.index(name) for name in _FIELDS))
    return [_job(pick(row)) for row in cursor.fetchall()]


_STATES = {str(state): state for state in JobState}


def _job(picked: tuple[Any, ...]) -> Job:
    values = list(picked)
    values[_STATE] = _STATES[values[_STATE]]
    return Job._make(values)


def _one(cursor: sqlite3.Cursor) -> Job | None:
    jobs = _all(cursor)
    return jobs[0] if jobs else None


def _sorted(cursor: sqlite3.Cursor) -> list[Job]:
    return sorted(_all(cursor), key=lambda job: job.id)


def unfinished(connection: sqlite3.Connection) -> list[Job]:
    """Return every job that is not done (queued, running, failed, dead, cancelled), oldest first.

    What `hb2r plan` and each pass pair with the plan's transcodes (`agent.queued_plan`); read
    through the index on state, however many jobs are done.
    """
    return _all(
        connection.execute(
            """
            SELECT * FROM jobs
            WHERE state IN ('queued', 'running', 'failed', 'dead', 'cancelled')
            ORDER BY id
            """
        )
    )
