"""What the agent did, kept to look back on: a row per day, and the last encodes and failures.

Why daily rows: the status page's charts and `/api/history` read one row per day asked for (30 by
default), however many jobs there were, and nothing is recomputed from the jobs. Each row is
brought up to date as work happens, by an upsert:
- an encode that is published adds to its day's `encodes`, `input_bytes`, `output_bytes` and
  `encode_seconds`, and one that fails to its `failures`, in the same transaction that records
  the job's new state (the dispatcher, `agent.dispatcher`): a day counts exactly what was committed;
- the queue's length (jobs queued, running or waiting to retry) is sampled when it changes (the
  dispatcher looks each tick, `agent.history.QueueSampler`): `queue_peak` keeps the day's
  highest, `queue_last` the last. The chart shows the peak: the backlog an operator asks about.

Bytes count only what was published: an encode that saved too little and was replaced by its
source (`larger_output: copy`) counts its source on both sides (it saved nothing), one whose
output was dropped (`skip`) counts none. Copies, adoptions and renames made by a pass are no
encodes and are not counted.

A day is a calendar day (YYYY-MM-DD) on the agent host's local clock, as the operator lives it
(the "queue drained" notification's "today" is the same day); the caller names it, so the SQL
needs no time zone. Each event also keeps its UTC time. Hosts sharing a PostgreSQL store each
count a finish by their own local day. `history_events` holds one row per finished encode or
failure, for the "Recent" list. Both are pruned once a day: days older than RETENTION_DAYS,
and events beyond the RECENT_KEPT newest or older than those days.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, NamedTuple

from agent.store.sql import Database

RETENTION_DAYS = 400
RECENT_KEPT = 1000


class Outcome(StrEnum):
    DONE = "done"  # published
    FAILED = "failed"  # failed, to be retried
    DEAD = "dead"  # failed for good, until an operator retries it


class Finished(NamedTuple):
    """One encode that ended: published (DONE), or failed with its reason."""

    finished_at: str  # ISO-8601 UTC
    day: str  # YYYY-MM-DD, the agent host's local day
    library: str
    rel_path: str
    job_id: int
    host: str
    outcome: Outcome
    seconds: float | None  # from its claim to its end; None: it never started here
    input_bytes: int | None  # the source's size
    output_bytes: int | None  # what was published (None: nothing was)
    larger_output: str | None = None  # what `larger_output.then` did instead (copy, keep, skip)
    error: str | None = None  # why it failed


class Day(NamedTuple):
    day: str
    encodes: int
    failures: int
    input_bytes: int
    output_bytes: int
    encode_seconds: float
    queue_peak: int | None  # None: the queue was never looked at that day
    queue_last: int | None


class Event(NamedTuple):
    id: int
    finished: Finished


_EVENT_COLUMNS = (
    "finished_at, day, library, rel_path, job_id, host, outcome, seconds, input_bytes, output_bytes,"
    " larger_output, error"
)


def record(database: Database, finished: Finished) -> None:
    """Keep an ended encode: one event row, and its day's row added to (call inside the transaction
    that records the job's new state)."""
    values = (*finished[:6], str(finished.outcome), *finished[7:])  # the outcome as plain text for both drivers
    database.execute(
        f"INSERT INTO history_events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608 - constants
        values,
    )
    done = finished.outcome is Outcome.DONE
    published = done and finished.output_bytes is not None
    database.execute(
        """
        INSERT INTO history_days (day, encodes, failures, input_bytes, output_bytes, encode_seconds)
        VALUES (?, ?, ?, ?, ?, ?)
        ON CONFLICT (day) DO UPDATE SET
            encodes = history_days.encodes + excluded.encodes,
            failures = history_days.failures + excluded.failures,
            input_bytes = history_days.input_bytes + excluded.input_bytes,
            output_bytes = history_days.output_bytes + excluded.output_bytes,
            encode_seconds = history_days.encode_seconds + excluded.encode_seconds
        """,
        (
            finished.day,
            int(done),
            int(not done),
            (finished.input_bytes or 0) if published else 0,
            (finished.output_bytes or 0) if published else 0,
            (finished.seconds or 0.0) if done else 0.0,
        ),
    )


def sample_queue(database: Database, *, day: str, length: int) -> None:
    """Note the queue's length on day: its peak so far and its last value."""
    if length < 0:
        raise ValueError(f"a queue length is 0 or more, got {length}")
    database.execute(
        """
        INSERT INTO history_days (day, queue_peak, queue_last) VALUES (?, ?, ?)
        ON CONFLICT (day) DO UPDATE SET
            queue_peak = CASE WHEN history_days.queue_peak IS NULL OR history_days.queue_peak < excluded.queue_peak
                              THEN excluded.queue_peak ELSE history_days.queue_peak END,
            queue_last = excluded.queue_last
        """,
        (day, length, length),
    )


def days_from(database: Database, first_day: str) -> list[Day]:
    """Return the day rows from first_day (YYYY-MM-DD) on, oldest first; days with no row are absent."""
    rows = database.execute(
        """
        SELECT day, encodes, failures, input_bytes, output_bytes, encode_seconds, queue_peak, queue_last
        FROM history_days WHERE day >= ? ORDER BY day
        """,
        (first_day,),
    ).fetchall()
    return [
        Day(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4]), float(row[5]), _int(row[6]), _int(row[7]))
        for row in rows
    ]


def recent(database: Database, *, first_day: str, limit: int) -> list[Event]:
    """Return the newest `limit` events of first_day and after, newest first."""
    rows = database.execute(
        f"SELECT id, {_EVENT_COLUMNS} FROM history_events WHERE day >= ? ORDER BY id DESC LIMIT ?",  # noqa: S608 - constants
        (first_day, limit),
    ).fetchall()
    return [Event(int(row[0]), _finished(row[1:])) for row in rows]


def prune(database: Database, *, before_day: str, keep: int = RECENT_KEPT) -> int:
    """Delete the days before before_day, and the events of those days or beyond the `keep` newest;
    return how many rows went."""
    gone = database.execute("DELETE FROM history_days WHERE day < ?", (before_day,)).rowcount
    gone += database.execute("DELETE FROM history_events WHERE day < ?", (before_day,)).rowcount
    gone += database.execute(
        "DELETE FROM history_events WHERE id <= (SELECT id FROM history_events ORDER BY id DESC LIMIT 1 OFFSET ?)",
        (keep,),
    ).rowcount
    return gone


def _finished(row: Sequence[Any]) -> Finished:
    finished_at, day, library, rel_path, job_id, host, outcome, seconds, input_bytes, output_bytes, larger, error = row
    return Finished(
        finished_at,
        day,
        library,
        rel_path,
        int(job_id),
        host,
        Outcome(outcome),
        None if seconds is None else float(seconds),
        _int(input_bytes),
        _int(output_bytes),
        larger,
        error,
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
