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
  (`Database.transaction()`, as the engine does to finish a job together with its ledger
  row) or, outside one, statement by statement. Every state change is one
  guarded UPDATE and so atomic by itself; `enqueue` is two statements (insert, then cancel
  the superseded job), so batches of it belong in one transaction.
- The one read that feeds a write, `mark_failed` (attempts + 1), writes only if the row still
  holds what it read (`attempts = ?`, a compare-and-set): under PostgreSQL's READ COMMITTED a
  change committed in between makes it fail loudly (JobStateError), never count an attempt
  twice, so it needs no `SELECT ... FOR UPDATE`; nor do the others, which read nothing first.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from agent import timestamps
from agent.retry import backoff_delay
from agent.store import tallies
from agent.store.order import QueueOrder, first_fronted, first_in_library, library_sequence, source_size
from agent.store.sql import Cursor, Database
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
    host: str | None = None  # the host running it under a lease (agent.store.leases); None otherwise


class LeaseLost(JobError):
    """The token is no longer the job's (its lease expired, it was released or cancelled); nothing was written."""

    def __init__(self, message: str, *, job_id: int, token: int) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.token = token


class CancelledBy(StrEnum):
    OPERATOR = "operator"  # stays cancelled until retried or the source changes
    ENGINE = "engine"  # the plan stopped wanting it: queued again when wanted again


_FIELDS = Job._fields
_STATE = _FIELDS.index("state")
_COLUMNS = ", ".join(_FIELDS)  # every query reads these columns, in this order
__all__ = ["Job", "JobError", "JobEvent", "JobNotFound", "JobState", "JobStateError", "LeaseLost"]
# The guards of the state changes below, from the transition table (constants, not input).
_START = f"state IN {sql_states(JobEvent.START)}"
_FINISH = f"state IN {sql_states(JobEvent.FINISH)}"
_FAIL = f"state IN {sql_states(JobEvent.FAIL)}"
_REQUEUE = f"state IN {sql_states(JobEvent.REQUEUE)}"
_CANCEL = f"state IN {sql_states(JobEvent.CANCEL)}"
_RETRY = f"state IN {sql_states(JobEvent.RETRY)}"


def _sql(text: str) -> str:
    """Return text with `{COLUMNS}` spelled out (a constant: no input ever reaches SQL text)."""
    return text.replace("{COLUMNS}", _COLUMNS)


def enqueue(
    database: Database,
    *,
    library: str,
    rel_path: str,
    fingerprint: str,
    preset_hash: str,
    output_path: str,
    reason: str,
    now: datetime,
    saving: int = 0,
) -> Job | None:
    """Queue a transcode of this identity; return the job, or None if the identity already has one.
    `saving`: the bytes its encode is expected to save (`agent.saving_estimate`), for `order: saving`.

    A job of the same identity that the engine cancelled is queued again and returned; so is a
    done one, since the plan asks for a done identity again only when its output went missing.
    One an operator cancelled is left alone (None). A queued or failed job of another identity
    for the same (library, rel_path) is cancelled (by the engine).
    """
    stamp = timestamps.stamp(now)
    cursor = database.execute(
        _sql("""
        INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, state, attempts,
                          created_at, updated_at, source_size, saving)
        VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?)
        ON CONFLICT (library, rel_path, fingerprint, preset_hash) DO UPDATE SET
            state = 'queued', reason = excluded.reason, output_path = excluded.output_path,
            attempts = CASE WHEN jobs.state = 'done' THEN 0 ELSE jobs.attempts END,
            host_losses = CASE WHEN jobs.state = 'done' THEN 0 ELSE jobs.host_losses END,
            not_before = NULL, progress = NULL, cancelled_by = NULL, updated_at = excluded.updated_at,
            priority = 0, source_size = excluded.source_size, saving = excluded.saving
        WHERE jobs.state = 'done'
           OR (jobs.state = 'cancelled' AND (jobs.cancelled_by IS NULL OR jobs.cancelled_by <> 'operator'))
        RETURNING {COLUMNS}
        """),
        (library, rel_path, fingerprint, preset_hash, output_path, reason, stamp, stamp, source_size(fingerprint),
         max(0, saving)),
    )
    job = _one(cursor)
    if job is None:
        return None
    database.execute(
        """
        UPDATE jobs SET state = 'cancelled', cancelled_by = 'engine', not_before = NULL, progress = NULL,
                        updated_at = ?
        WHERE library = ? AND rel_path = ? AND id != ? AND state IN ('queued', 'failed')
        """,
        (stamp, library, rel_path, job.id),
    )
    return job


def left_alone_by_enqueue(job: Job) -> bool:
    """Return whether `enqueue` of this job's identity would leave the job as it is (and return None):
    it is waiting, running or dead, or an operator cancelled it (the `WHERE` of `enqueue`'s upsert).
    A pass reads the jobs of its transcodes first and queues only the others: a queue of 10,000
    files re-planned every pass then costs one read, not 10,000 upserts and ledger look-ups."""
    return job.state in ("queued", "running", "failed", "dead") or (
        job.state == "cancelled" and job.cancelled_by == "operator"
    )


def hold_identity(database: Database, *, library: str, rel_path: str, fingerprint: str, preset_hash: str) -> None:
    """Lock this identity's job row, if any, until the caller's transaction ends.

    Why: a pass checks the ledger, then `enqueue` reopens a done job; with several hosts another
    one may publish that very job in between (its row turns done under the pass's eyes), and the
    pass would queue a second encode of content just published. Holding the row first makes the
    pass wait for a publish in flight and then see its ledger row. SQLite's write transaction
    (BEGIN IMMEDIATE) already keeps every other writer out: nothing to lock there.
    """
    if database.dialect == "sqlite":
        return
    database.execute(
        "SELECT id FROM jobs WHERE library = ? AND rel_path = ? AND fingerprint = ? AND preset_hash = ? FOR UPDATE",
        (library, rel_path, fingerprint, preset_hash),
    )


def next_runnable(
    database: Database,
    *,
    now: datetime,
    library_order: Sequence[str],
    exclude_libraries: Collection[str] = (),
    order: QueueOrder | None = None,
) -> Job | None:
    """Return the job to start next, or None.

    Runnable: queued, or failed with `not_before` passed; not in an excluded library; no other job
    for the same file running. A job moved to the front first (the latest moved first); then by
    `order` (`agent.store.order`; default: libraries as in `library_order`, others after them by
    their oldest job, and the oldest job of the library).
    """
    # Indexed queries only (partial indexes that hold just the waiting jobs): the dispatcher
    # asks every few seconds, also with a long queue or a paused library.
    order = order or QueueOrder()
    stamp = timestamps.stamp(now)
    excluded = set(exclude_libraries)
    waiting = [library for library in _waiting_libraries(database) if library not in excluded]
    picked = first_fronted(database, libraries=waiting, stamp=stamp, lock="")
    for library in library_sequence(database, waiting=waiting, library_order=library_order, order=order, stamp=stamp):
        if picked is not None:
            break
        picked = first_in_library(database, library=library, stamp=stamp, order_by=order.of(library), lock="")
    return None if picked is None else get(database, picked)


def move_to_front(database: Database, job_id: int, *, now: datetime) -> Job:
    """Put a waiting (queued or failed) job before every other, its backoff waived; return it.

    The latest job moved goes first. Raise JobNotFound if there is no such job, JobStateError if
    it is not waiting (running, done, dead or cancelled: retry it first).
    """
    cursor = database.execute(
        _sql("""
        UPDATE jobs SET priority = (
                            SELECT coalesce(max(priority), 0) + 1 FROM jobs{INDEXED} WHERE priority > 0 AND {WAITING}
                        ),
                        not_before = NULL,
                        updated_at = ?
        WHERE id = ? AND state IN ('queued', 'failed')
        RETURNING {COLUMNS}
        """)
        .replace("{WAITING}", "state IN ('queued', 'failed')")
        .replace("{INDEXED}", " INDEXED BY jobs_fronted" if database.dialect == "sqlite" else ""),
        (timestamps.stamp(now), job_id),
    )
    job = _one(cursor)
    if job is None:
        found = get(database, job_id)
        if found is None:
            raise JobNotFound(f"there is no job {job_id}")
        raise JobStateError(
            f"job {job_id} is {found.state}: only a queued or failed job can be moved to the front"
            + (" (retry it first)" if found.state in (JobState.DEAD, JobState.CANCELLED) else ""),
            job_id=job_id,
            state=found.state,
        )
    return job


def _waiting_libraries(database: Database) -> list[str]:
    """Return the libraries with queued or failed jobs: one index seek per library."""
    # Dialect-specific: SQLite must be told to use the partial index in the recursive seek
    # (`INDEXED BY`, SQLite only); PostgreSQL plans the same skip scan from the index itself.
    indexed = " INDEXED BY jobs_waiting" if database.dialect == "sqlite" else ""
    rows = database.execute(_WAITING_LIBRARIES.replace("{INDEXED}", indexed)).fetchall()
    return [library for (library,) in rows]


_WAITING_LIBRARIES = """
    WITH RECURSIVE waiting (library) AS (
        SELECT min(library) FROM jobs{INDEXED} WHERE state IN ('queued', 'failed')
        UNION ALL
        SELECT (
            SELECT min(library) FROM jobs{INDEXED}
            WHERE state IN ('queued', 'failed') AND library > waiting.library
        )
        FROM waiting WHERE waiting.library IS NOT NULL
    )
    SELECT library FROM waiting WHERE library IS NOT NULL
"""


def mark_running(database: Database, job_id: int, *, now: datetime) -> Job:
    """Mark a queued or failed job running (its last error cleared); return it.

    Raise JobNotFound or JobStateError if there is no such job or it is in another state.
    """
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, not_before = NULL, error = NULL, stderr_tail = NULL, progress = 0,
                        updated_at = ?
        WHERE id = ? AND {_START}
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.START)), timestamps.stamp(now), job_id),
    )
    return _one(cursor) or _refuse(database, job_id, event=JobEvent.START)


def record_progress(database: Database, job_id: int, *, progress: float, now: datetime) -> None:
    """Record a running job's progress in percent (clamped to 0-100); do nothing if it is not running."""
    if not math.isfinite(progress):
        raise ValueError(f"progress must be a finite percentage, got {progress!r}")
    database.execute(
        "UPDATE jobs SET progress = ?, updated_at = ? WHERE id = ? AND state = 'running'",
        (min(max(progress, 0.0), 100.0), timestamps.stamp(now), job_id),
    )


def mark_done(database: Database, job_id: int, *, now: datetime) -> Job:
    """Mark a running job done; return it. Call it in the transaction that records its ledger row.

    Raise JobNotFound or JobStateError if there is no such job or it is not running.
    """
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, not_before = NULL, progress = 100, updated_at = ?
        WHERE id = ? AND {_FINISH}
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.FINISH)), timestamps.stamp(now), job_id),
    )
    return _one(cursor) or _refuse(database, job_id, event=JobEvent.FINISH)


def mark_failed(
    database: Database,
    job_id: int,
    *,
    error: str,
    stderr_tail: Sequence[str],
    retry: Retry,
    now: datetime,
    token: int | None = None,
) -> Job:
    """Record a failure of a running job; return it, failed (to retry after a backoff) or dead.

    Its attempts grow by one; at `retry.attempts` the job is dead. Either way the error and the
    last STDERR_LINES lines of stderr are kept (failures that are not counted: `agent.store.failures`).
    With a token, only while that lease token holds the job. Raise JobNotFound or JobStateError
    if there is no such job or it is not running, LeaseLost (writing nothing) if token no longer holds it.
    """
    job = get(database, job_id)
    if token is not None:
        check_token(database, job_id, token, doing="record its failure")
    if job is None or job.state not in sources(JobEvent.FAIL):
        _refuse(database, job_id, event=JobEvent.FAIL)
    attempts = job.attempts + 1
    if attempts >= retry.attempts:
        state, not_before = target(JobEvent.EXHAUST), None
    else:
        delay = backoff_delay(attempt=attempts, backoff=retry.backoff, max_backoff=retry.max_backoff)
        state, not_before = target(JobEvent.FAIL), timestamps.stamp(now + delay)
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, attempts = ?, not_before = ?, error = ?, stderr_tail = ?, progress = NULL,
                        updated_at = ?
        WHERE id = ? AND {_FAIL} AND attempts = ?{fenced(token)}
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - the guard is built from the transition table's constants
        (str(state), attempts, not_before, error, _tail(stderr_tail), timestamps.stamp(now), job_id, job.attempts)
        + (() if token is None else (token,)),
    )
    failed = _one(cursor)
    if failed is None and token is not None:
        check_token(database, job_id, token, doing="record its failure")
    if failed is None:
        raise JobStateError(
            f"job {job_id} changed while its failure was being recorded", job_id=job_id, event=JobEvent.FAIL
        )
    return failed


def requeue_running(database: Database, *, now: datetime, host: str | None = None) -> list[Job]:
    """Put running jobs back in the queue, attempts unchanged (start-up after a crash, shutdown); return them.

    With a host, only that host's and those started without a lease (no host): other hosts'
    encodes go on. Without, every running job (a copy of a stopped agent's state).
    """
    mine = "" if host is None else " AND (host = ? OR host IS NULL)"
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, not_before = NULL, progress = NULL, host = NULL, lease_expires_at = NULL,
                        updated_at = ?
        WHERE {_REQUEUE}{mine}
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.REQUEUE)), timestamps.stamp(now), *(() if host is None else (host,))),
    )
    return _sorted(cursor)


def fenced(token: int | None) -> str:
    """Return the condition that fences an UPDATE by lease token (empty without one); its parameter comes last."""
    return "" if token is None else " AND lease_token = ?"


def check_token(database: Database, job_id: int, token: int, *, doing: str) -> None:
    """Raise LeaseLost if token is not job_id's lease token (running or not), saying where the job is now."""
    row = database.execute("SELECT state, host, lease_token FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is not None and row[2] == token:
        return
    if row is None:
        where = "there is no such job"
    elif row[1] is not None:
        where = f"the job is {row[0]} on host {row[1]} under token {row[2]}"
    else:
        where = f"the job is {row[0]}"
    raise LeaseLost(
        f"job {job_id}: token {token} no longer holds it, cannot {doing}: {where}", job_id=job_id, token=token
    )


def cancel(database: Database, job_id: int, *, now: datetime, by: CancelledBy = CancelledBy.ENGINE) -> Job:
    """Cancel a queued, running or failed job; return it. Stopping a running encode is the engine's part.

    `by` says who cancelled it: an operator's cancel is not undone by the next pass (see enqueue).
    Raise JobNotFound or JobStateError if there is no such job or it is in another state.
    """
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, cancelled_by = ?, not_before = NULL, progress = NULL, updated_at = ?
        WHERE id = ? AND {_CANCEL}
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.CANCEL)), str(by), timestamps.stamp(now), job_id),
    )
    return _one(cursor) or _refuse(database, job_id, event=JobEvent.CANCEL)


def operator_cancelled(database: Database) -> list[Job]:
    """Return the jobs an operator cancelled that no later job of the same file superseded, oldest first.

    Their files are not pending work: the agent will not encode them until retried or changed.
    """
    cursor = database.execute(
        _sql("""
        SELECT {COLUMNS} FROM jobs
        WHERE state = 'cancelled' AND cancelled_by = 'operator'
          AND NOT EXISTS (
              SELECT 1 FROM jobs AS other
              WHERE other.library = jobs.library AND other.rel_path = jobs.rel_path AND other.id > jobs.id
          )
        ORDER BY id
        """)
    )
    return _all(cursor)


def waiting(database: Database) -> list[tuple[int, str, str]]:
    """Return (id, library, rel_path) of every queued or failed job: cheap enough for every pass."""
    rows = database.execute("SELECT id, library, rel_path FROM jobs WHERE state IN ('queued', 'failed')").fetchall()
    return [(int(job_id), str(library), str(rel_path)) for job_id, library, rel_path in rows]


def retry(database: Database, job_id: int, *, now: datetime) -> Job:
    """Queue a dead, failed or cancelled job again with no attempts counted; return it.

    Its last error stays until it runs. Raise JobNotFound or JobStateError if there is no such
    job, it is in another state, or another job for the same file is queued, running or failed.
    """
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, attempts = 0, not_before = NULL, progress = NULL, cancelled_by = NULL,
                        host_losses = 0, lost_hosts = NULL, updated_at = ?
        WHERE id = ? AND {_RETRY}
          AND NOT EXISTS (
              SELECT 1 FROM jobs AS other
              WHERE other.library = jobs.library AND other.rel_path = jobs.rel_path AND other.id != jobs.id
                AND other.state IN ('queued', 'running', 'failed')
          )
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.RETRY)), timestamps.stamp(now), job_id),
    )
    return _one(cursor) or _refuse(database, job_id, event=JobEvent.RETRY)


def retry_dead(database: Database, *, now: datetime) -> list[Job]:
    """Queue every dead job again with no attempts counted; return them, oldest first.

    A dead job that a later job for the same file superseded (the source or preset changed since),
    or whose file has another job queued, running or failed, is left as it is.
    """
    cursor = database.execute(
        _sql("""
        UPDATE jobs SET state = 'queued', attempts = 0, not_before = NULL, progress = NULL, host_losses = 0,
                        lost_hosts = NULL, updated_at = ?
        WHERE state = 'dead'
          AND NOT EXISTS (
              SELECT 1 FROM jobs AS other
              WHERE other.library = jobs.library AND other.rel_path = jobs.rel_path AND other.id != jobs.id
                AND (other.id > jobs.id OR other.state IN ('queued', 'running', 'failed'))
          )
        RETURNING {COLUMNS}
        """),
        (timestamps.stamp(now),),
    )
    return _sorted(cursor)


def list_jobs(database: Database, *, state: JobState | None = None, library: str | None = None) -> list[Job]:
    """Return the jobs, oldest first, only those in `state` and `library` when given."""
    where, params = _filters(state=state, library=library)
    query = _sql("SELECT {COLUMNS} FROM jobs WHERE " + where + " ORDER BY id")  # noqa: S608 (constants only)
    return _all(database.execute(query, params))


def _filters(*, state: JobState | None, library: str | None, before_id: int | None = None) -> tuple[str, list[Any]]:
    """Return the WHERE condition and its parameters for the filters given (built from constants only)."""
    conditions, params = ["1 = 1"], []
    for condition, value in (("state = ?", state), ("library = ?", library), ("id < ?", before_id)):
        if value is not None:
            conditions.append(condition)
            params.append(str(value) if isinstance(value, JobState) else value)
    return " AND ".join(conditions), params


def get(database: Database, job_id: int) -> Job | None:
    return _one(database.execute(_sql("SELECT {COLUMNS} FROM jobs WHERE id = ?"), (job_id,)))


def counts(database: Database) -> dict[JobState, int]:
    """Return the number of jobs in each state, every state present (0 if none).

    Read from the tallies that triggers keep in step with the jobs, in the transaction that
    changes a job (migration 11): a few rows, however many jobs there are.
    """
    source = tallies.JOBS[database.dialect]
    found = dict(database.execute(f"SELECT state, sum(total) FROM {source} GROUP BY state").fetchall())  # noqa: S608 - constants
    return {state: int(found.get(str(state)) or 0) for state in JobState}


def counts_by_library(database: Database) -> dict[str, dict[str, int]]:
    """Return library -> state -> number of jobs (states with none are left out), from the tallies."""
    result: dict[str, dict[str, int]] = {}
    source = tallies.JOBS[database.dialect]
    for library, state, count in database.execute(
        f"SELECT library, state, sum(total) FROM {source} GROUP BY library, state"  # noqa: S608 - constants
        " HAVING sum(total) <> 0 ORDER BY library, state"
    ).fetchall():
        result.setdefault(library, {})[state] = int(count)
    return result


def page(
    database: Database,
    *,
    state: JobState | None = None,
    library: str | None = None,
    before_id: int | None = None,
    limit: int,
) -> list[Job]:
    """Return up to limit jobs, newest (highest id) first, with ids below before_id when given."""
    where, params = _filters(state=state, library=library, before_id=before_id)
    query = _sql("SELECT {COLUMNS} FROM jobs WHERE " + where + " ORDER BY id DESC LIMIT ?")  # noqa: S608 (constants)
    return _all(database.execute(query, [*params, limit]))


def last_change(database: Database) -> int:
    """Return the number of the latest change to any job (0 if none): where a reader of changes starts."""
    row = database.execute("SELECT coalesce(max(change_seq), 0) FROM jobs").fetchone()
    return 0 if row is None else int(row[0])


def changed_after(database: Database, change: int, *, limit: int = 500) -> list[tuple[int, Job]]:
    """Return (change number, job) of the jobs changed after change number `change`, oldest change first.

    Change numbers only grow (triggers number every insert and update), whatever the wall clock
    does: a reader that follows them misses nothing when `updated_at` steps back.
    """
    # change_seq is numbered by triggers in SQLite (agent.store.db, migration 7): dialect-specific DDL.
    cursor = database.execute(
        _sql("SELECT change_seq, {COLUMNS} FROM jobs WHERE change_seq > ? ORDER BY change_seq LIMIT ?"), (change, limit)
    )
    return [(int(row[0]), _job(row[1:])) for row in cursor.fetchall()]


def _tail(lines: Sequence[str]) -> str | None:
    if isinstance(lines, str):  # a whole text is a Sequence[str] too: take its lines, not its characters
        lines = lines.splitlines()
    split = [piece for line in lines for piece in (line.splitlines() or [""])]
    return "\n".join(split[-STDERR_LINES:]) or None


def _refuse(database: Database, job_id: int, *, event: JobEvent) -> NoReturn:
    """Raise why job_id could not take event: it does not exist, the transition table does not
    allow event from its state, or (for a retry) another job for the same file is active."""
    job = get(database, job_id)
    if job is None:
        raise JobNotFound(f"there is no job {job_id}")
    if job.state not in sources(event):
        raise refusal(job_id=job_id, state=job.state, event=event)
    verb = event.verb
    other = database.execute(
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


def _all(cursor: Cursor) -> list[Job]:
    """Return the cursor's rows (`SELECT {COLUMNS}` or `RETURNING {COLUMNS}`) as jobs."""
    return [_job(row) for row in cursor.fetchall()]


_STATES = {str(state): state for state in JobState}


def _job(picked: tuple[Any, ...]) -> Job:
    values = list(picked)
    values[_STATE] = _STATES[values[_STATE]]
    return Job._make(values)


def _one(cursor: Cursor) -> Job | None:
    jobs = _all(cursor)
    return jobs[0] if jobs else None


def _sorted(cursor: Cursor) -> list[Job]:
    return sorted(_all(cursor), key=lambda job: job.id)


def unfinished(database: Database) -> list[Job]:
    """Return every job that is not done (queued, running, failed, dead, cancelled), oldest first.

    What `hb2r plan` and each pass pair with the plan's transcodes (`agent.queued_plan`); read
    through the index on state, however many jobs are done.
    """
    return _all(
        database.execute(
            _sql("""
            SELECT {COLUMNS} FROM jobs
            WHERE state IN ('queued', 'running', 'failed', 'dead', 'cancelled')
            ORDER BY id
            """)
        )
    )


UNFINISHED_CHUNK = 500  # paths per query, well under SQLite's limit of parameters


def unfinished_of_files(database: Database, library: str, rel_paths: Sequence[str]) -> list[Job]:
    """Return the jobs of these files of library that are not done, oldest first.

    What a plan of some folders pairs with its transcodes (`agent.queued_plan`), read by file
    through the index of job identities (library, path, ...): however many jobs the table holds.
    """
    found: list[Job] = []
    keys = sorted(set(rel_paths))
    for start in range(0, len(keys), UNFINISHED_CHUNK):
        chunk = keys[start : start + UNFINISHED_CHUNK]
        marks = ", ".join("?" * len(chunk))
        query = _sql(
            "SELECT {COLUMNS} FROM jobs WHERE library = ? AND rel_path IN (" + marks + ")"  # noqa: S608 (constants)
            " AND state IN ('queued', 'running', 'failed', 'dead', 'cancelled')"
        )
        found.extend(_all(database.execute(query, (library, *chunk))))
    return sorted(found, key=lambda job: job.id)
