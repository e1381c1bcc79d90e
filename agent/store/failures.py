"""Failures that are not counted against a job's attempts: temporary ones, and permanent ones.

`jobs.mark_failed` counts every failure; after `retry.attempts` the job is dead. Two kinds of
failure must not be counted that way (see `agent.verify.FailureKind`):
- temporary: the cause lies outside the file and passes by itself (the archive's disk filled,
  the source was rewritten during the encode, an output folder is on another mount). The job
  is failed with its attempts unchanged and may run again after `retry.backoff`; the gate, the
  next pass or the archive checks decide whether it really does.
- permanent: retrying cannot help until an operator acts (a file hb2r did not make stands at
  the output path, HandBrakeCLI finds no title in the source, the source is gone). The job is
  dead at once, with the reason, its one attempt counted; `hb2r retry` brings it back.
Both state changes are checked against `agent.store.transitions`.
Like `agent.store.jobs`, no function here begins or commits a transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from agent import timestamps
from agent.retry import backoff_delay
from agent.store.jobs import Job, _one, _refuse, _sql, _tail, check_token, fenced
from agent.store.sql import Database
from agent.store.transitions import JobEvent, sql_states, target

if TYPE_CHECKING:
    from agent.config.models import Retry


def mark_failed_temporarily(
    database: Database,
    job_id: int,
    *,
    error: str,
    stderr_tail: Sequence[str],
    retry: Retry,
    now: datetime,
    token: int | None = None,
) -> Job:
    """Fail a running job without counting the attempt; it may run again after `retry.backoff`; return it.

    Raise JobNotFound or JobStateError if there is no such job or it is not running; with a
    token, LeaseLost (writing nothing) if that lease token no longer holds it.
    """
    not_before = now + backoff_delay(attempt=1, backoff=retry.backoff, max_backoff=retry.max_backoff)
    return _end(database, job_id, event=JobEvent.FAIL_TEMPORARILY, not_before=timestamps.stamp(not_before), error=error,
                stderr_tail=stderr_tail, now=now, token=token)  # fmt: skip


def mark_failed_permanently(
    database: Database, job_id: int, *, error: str, stderr_tail: Sequence[str], now: datetime, token: int | None = None
) -> Job:
    """Make a running job dead at once (retrying cannot help), its attempt counted; return it.

    Raise JobNotFound or JobStateError if there is no such job or it is not running; with a
    token, LeaseLost (writing nothing) if that lease token no longer holds it.
    """
    return _end(
        database,
        job_id,
        event=JobEvent.FAIL_PERMANENTLY,
        not_before=None,
        error=error,
        stderr_tail=stderr_tail,
        now=now,
        token=token,
    )


def _end(
    database: Database,
    job_id: int,
    *,
    event: JobEvent,
    not_before: str | None,
    error: str,
    stderr_tail: Sequence[str],
    now: datetime,
    token: int | None,
) -> Job:
    counted = 1 if event is JobEvent.FAIL_PERMANENTLY else 0  # a temporary failure is not the file's
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, attempts = attempts + ?, not_before = ?, error = ?, stderr_tail = ?,
                        progress = NULL, updated_at = ?
        WHERE id = ? AND state IN {sql_states(event)}{fenced(token)}
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(event)), counted, not_before, error, _tail(stderr_tail), timestamps.stamp(now), job_id)
        + (() if token is None else (token,)),
    )
    job = _one(cursor)
    if job is None and token is not None:
        check_token(database, job_id, token, doing="record its failure")
    if job is None:
        _refuse(database, job_id, event=event)
    return job
