"""Leases with fencing: how several hosts share one job queue without running a job twice.

A host *claims* the next runnable job of the libraries it can read now. The claim runs the job
under a lease: the host's name, an expiry, and a fencing token that no claim had before. The
host *heartbeats* (every lease/3) to renew the lease; a heartbeat that matches no row (another
token holds the job, or it is no longer running) tells it the job is lost: kill the encode,
drop its temp file. It *publishes* through `finish_claimed`, which marks the job done and writes
its ledger row in one transaction only while its token is still the job's, else writes nothing
and raises `LeaseLost`. A host with a problem of its own (a missing mount) *releases* the job
without spending an attempt. `expire_leases` puts the jobs of hosts that stopped renewing back
in the queue, counting each loss in `host_losses`, apart from `attempts`: a host that dies is
not the file's fault. Past `host_loss_cap` losses the job is dead, its error naming the hosts.

Decisions:
- Atomic claims. PostgreSQL: the candidate row is read `FOR UPDATE SKIP LOCKED` and updated in
  one transaction, so concurrent claimers skip each other's rows instead of waiting or taking
  the same one. SQLite: `BEGIN IMMEDIATE` makes the claim the only writer while it chooses.
  The choice is `jobs.next_runnable`'s (the front, then `agent.store.order`; one encode per
  file), among `libraries` only.
- Tokens come from one counter for all jobs and only grow: a PostgreSQL sequence; in SQLite
  `max(lease_token) + 1` inside the claim's transaction (which no other writer can enter).
  A unique index makes a token handed out twice an error, not a silent double claim.
- Clock: every lease time is the *database's* clock, never a host's, so hosts whose clocks
  disagree still agree on who holds what. Each operation first reads the database's time
  (PostgreSQL `clock_timestamp()`; SQLite's 'now', which on one host is the host's clock).
- `lease_expires_at` is ISO-8601 UTC text with microseconds, fixed width, like every other
  time in the store: text order is time order in SQL, `hb2r store migrate` copies it as it is,
  and the API can show it unchanged. (A numeric epoch would be as easy to compare but would be
  the only such column.)
- The claim, release and expiry stamp `updated_at` with the database's time too; they take no
  `now`. A heartbeat renews a lease, and `finish_claimed` publishes, even after its expiry if
  no `expire_leases` has taken the job yet: the token is unchanged, no other host can hold it.
- `host_losses` counts the losses, `lost_hosts` (a fifth column, beyond the four the issue
  names) keeps who lost it, so that the dead job's reason can name every host and not only the
  last. An operator's `hb2r retry` starts both afresh, as it does the attempts.
- A job started by `mark_running` (one host, no lease) has no expiry and never expires.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple, NoReturn

from agent import timestamps
from agent.domain import LedgerEntry
from agent.store import ledger
from agent.store.jobs import Job, _job, _one, _sql, _waiting_libraries
from agent.store.jobs import LeaseLost as LeaseLost  # raised here too; its home is `jobs` (failures are fenced)
from agent.store.order import QueueOrder, first_fronted, first_in_library, library_sequence
from agent.store.sql import Database
from agent.store.transitions import JobError, JobEvent, JobState, sql_states, target


class Claim(NamedTuple):
    """A job a host runs under a lease: publish and heartbeat with this token."""

    job: Job
    host: str
    token: int
    expires_at: str  # ISO-8601 UTC, on the database's clock


class Heartbeat(NamedTuple):
    """What a heartbeat learned: `held` False means the job is lost (stop it); `cancelled` says why."""

    held: bool
    cancelled: bool  # the job was cancelled elsewhere (an operator, the planner)
    expires_at: str | None  # the renewed expiry while held


class Lease(NamedTuple):
    """A job's lease columns, as `hb2r jobs` and the tests read them."""

    host: str | None
    token: int | None
    expires_at: str | None
    host_losses: int
    lost_hosts: str | None  # the hosts that lost it, oldest first, ", "-separated


_CLAIM = f"state IN {sql_states(JobEvent.CLAIM)}"
_RELEASE = f"state IN {sql_states(JobEvent.RELEASE)}"
_EXPIRE = f"state IN {sql_states(JobEvent.EXPIRE)}"
_FINISH = f"state IN {sql_states(JobEvent.FINISH)}"

# The database's time as the store's ISO text; dialect-specific (SQLite's %f has milliseconds only).
_NOW = {
    "sqlite": "SELECT strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00'",
    "postgres": "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')",
}
# The next fencing token: a sequence in PostgreSQL (concurrent claims); max + 1 under SQLite's write lock.
_NEXT_TOKEN = {
    "sqlite": "(SELECT coalesce(max(lease_token), 0) + 1 FROM jobs)",
    "postgres": "nextval('jobs_lease_token')",
}
_LOST_HOSTS = "CASE WHEN lost_hosts IS NULL THEN coalesce(host, '?') ELSE lost_hosts || ', ' || coalesce(host, '?') END"


def database_now(database: Database) -> datetime:
    """Return the database's current time (aware, UTC)."""
    row = database.execute(_NOW[database.dialect]).fetchone()
    if row is None:
        raise JobError("the database did not tell its time")
    return datetime.fromisoformat(str(row[0]))


def claim(
    database: Database,
    host: str,
    *,
    libraries: Collection[str],
    lease: timedelta,
    library_order: Sequence[str],
    order: QueueOrder | None = None,
) -> Claim | None:
    """Run the next runnable job of `libraries` for `host` under a new lease; return the claim, or None.

    The job is the one `jobs.next_runnable` would start among those libraries (in `order`). Raise ValueError
    for an empty host name or a lease that is not positive.
    """
    if not host:
        raise ValueError("a claim needs the host's name")
    _check_lease(lease)
    allowed = set(libraries)
    if not allowed:
        return None
    order = order or QueueOrder()
    lock = " FOR UPDATE SKIP LOCKED" if database.dialect == "postgres" else ""
    with database.transaction():
        now = database_now(database)
        stamp = timestamps.stamp(now)
        waiting = [library for library in _waiting_libraries(database) if library in allowed]
        fronted = first_fronted(database, libraries=waiting, stamp=stamp, lock=lock)
        if fronted is not None:
            taken = _take(database, fronted, host=host, expires_at=timestamps.stamp(now + lease), stamp=stamp)
            if taken is not None:
                return taken
        sequence = library_sequence(database, waiting=waiting, library_order=library_order, order=order, stamp=stamp)
        for library in sequence:
            candidate = first_in_library(database, library=library, stamp=stamp, order_by=order.of(library), lock=lock)
            if candidate is None:
                continue  # none runnable, or every one is being claimed by another host
            taken = _take(database, candidate, host=host, expires_at=timestamps.stamp(now + lease), stamp=stamp)
            if taken is not None:
                return taken
    return None


def _take(database: Database, job_id: int, *, host: str, expires_at: str, stamp: str) -> Claim | None:
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, host = ?, lease_token = {_NEXT_TOKEN[database.dialect]}, lease_expires_at = ?,
                        not_before = NULL, error = NULL, stderr_tail = NULL, progress = 0, remaining_bytes = NULL,
                        updated_at = ?
        WHERE id = ? AND {_CLAIM}
        RETURNING {{COLUMNS}}, lease_token
        """),  # noqa: S608 - the guard and the token expression are constants
        (str(target(JobEvent.CLAIM)), host, expires_at, stamp, job_id),
    )
    row = cursor.fetchone()
    if row is None:
        return None
    return Claim(job=_job(row[:-1]), host=host, token=int(row[-1]), expires_at=expires_at)


def heartbeat(
    database: Database,
    job_id: int,
    token: int,
    *,
    progress: float | None,
    lease: timedelta,
    remaining: int | None = None,
) -> Heartbeat:
    """Renew the lease of job_id held by token for `lease` from now, recording progress (percent) if given.

    `remaining`: the bytes the encode may still write into the archive (every host's gate counts
    them, see `remaining_bytes`), if given. Without progress the job's `updated_at` is left as it
    is (the encode has ended and is being verified: start-up recovery compares its output's
    mtime with that time). Return held=False if token no longer holds a running job_id (the host
    must stop it), with cancelled=True if that is because the job was cancelled while token held it.
    """
    _check_lease(lease)
    if progress is not None:
        if not math.isfinite(progress):
            raise ValueError(f"progress must be a finite percentage, got {progress!r}")
        progress = min(max(progress, 0.0), 100.0)
    if remaining is not None and remaining < 0:
        raise ValueError(f"remaining bytes must be 0 or more, got {remaining}")
    now = database_now(database)
    expires_at = timestamps.stamp(now + lease)
    changes: list[str] = ["lease_expires_at = ?"]
    values: list[object] = [expires_at]
    if progress is not None:
        changes += ["progress = ?", "updated_at = ?"]
        values += [progress, timestamps.stamp(now)]
    if remaining is not None:
        changes.append("remaining_bytes = ?")
        values.append(remaining)
    renewed = database.execute(
        f"UPDATE jobs SET {', '.join(changes)} WHERE id = ? AND lease_token = ? AND state = 'running'"  # noqa: S608 - constants
        " RETURNING lease_expires_at",
        (*values, job_id, token),
    ).fetchone()
    if renewed is not None:
        return Heartbeat(held=True, cancelled=False, expires_at=str(renewed[0]))
    found = database.execute("SELECT state, lease_token FROM jobs WHERE id = ?", (job_id,)).fetchone()
    cancelled = found is not None and found[0] == JobState.CANCELLED and found[1] == token
    return Heartbeat(held=False, cancelled=cancelled, expires_at=None)


def remaining_bytes(database: Database, *, other_than: str | None) -> int:
    """Return what the running encodes have yet to write into the archive, as their heartbeats said;
    those of host other_than left out (a host counts its own from memory, fresher)."""
    query = "SELECT coalesce(sum(remaining_bytes), 0) FROM jobs WHERE state = 'running'"
    params: tuple[str, ...] = ()
    if other_than is not None:
        query += " AND (host IS NULL OR host != ?)"
        params = (other_than,)
    row = database.execute(query, params).fetchone()
    return 0 if row is None else int(row[0])


def release(database: Database, job_id: int, token: int, *, reason: str) -> Job:
    """Put job_id, held by token, back in the queue with no attempt spent; return it.

    For problems of the host, not of the file (its mount is missing, its HandBrakeCLI does not
    start); `reason` becomes the job's last error. Raise LeaseLost if token no longer holds it.
    """
    stamp = timestamps.stamp(database_now(database))
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET state = ?, host = NULL, lease_expires_at = NULL, not_before = NULL, progress = NULL,
                        error = ?, updated_at = ?
        WHERE id = ? AND lease_token = ? AND {_RELEASE}
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - the guard is built from the transition table's constants
        (str(target(JobEvent.RELEASE)), reason, stamp, job_id, token),
    )
    return _one(cursor) or _lost(database, job_id, token, doing="release")


def expire_leases(database: Database, *, host_loss_cap: int) -> list[Job]:
    """Take every running job whose lease ran out (database clock) from its host; return them, oldest first.

    Each goes back to the queue with host_losses + 1 and its attempts unchanged; one lost more
    than host_loss_cap times is dead instead, its error naming the hosts that lost it.
    """
    if host_loss_cap < 0:
        raise ValueError(f"host_loss_cap must be 0 or more, got {host_loss_cap}")
    stamp = timestamps.stamp(database_now(database))
    expired = f"{_EXPIRE} AND lease_expires_at IS NOT NULL AND lease_expires_at < ?"
    if database.dialect == "postgres":
        # A row another host has locked is in the middle of its transaction (publishing it, say):
        # skip it rather than wait. If that host is frozen, the server ends its transaction after
        # a lease (`PostgresStore.name_connection`) and the next call takes the job.
        expired = f"id IN (SELECT id FROM jobs WHERE {expired} FOR UPDATE SKIP LOCKED)"  # noqa: S608 - constants
    cursor = database.execute(
        _sql(f"""
        UPDATE jobs SET
            state = CASE WHEN host_losses + 1 > ? THEN ? ELSE ? END,
            error = CASE
                WHEN host_losses + 1 > ? THEN
                    'lost ' || (host_losses + 1) || ' times by hosts that stopped renewing its lease'
                    || ' (more than the cap of ' || ? || '): ' || {_LOST_HOSTS}
                ELSE 'host ' || coalesce(host, '?') || ' stopped renewing its lease'
            END,
            host_losses = host_losses + 1,
            lost_hosts = {_LOST_HOSTS},
            host = NULL, lease_expires_at = NULL, not_before = NULL, progress = NULL, updated_at = ?
        WHERE {expired}
        RETURNING {{COLUMNS}}
        """),  # noqa: S608 - built from constants only
        (
            host_loss_cap,
            str(target(JobEvent.EXPIRE_LAST)),
            str(target(JobEvent.EXPIRE)),
            host_loss_cap,
            host_loss_cap,
            stamp,
            stamp,
        ),
    )
    return sorted((_job(row) for row in cursor.fetchall()), key=lambda job: job.id)


def finish_claimed(
    database: Database,
    job_id: int,
    token: int,
    entry: LedgerEntry,
    *,
    encoded_at: str,
    output_size: int | None = None,
    now: datetime,
) -> Job:
    """Mark job_id done and record its ledger entry, in one transaction, only while token holds it; return it.

    Raise LeaseLost, writing nothing, if token no longer holds the running job (another host may
    be encoding it); ValueError if entry is not the job's file.
    """
    with database.transaction():
        cursor = database.execute(
            _sql(f"""
            UPDATE jobs SET state = ?, not_before = NULL, progress = 100, lease_expires_at = NULL, updated_at = ?
            WHERE id = ? AND lease_token = ? AND {_FINISH}
            RETURNING {{COLUMNS}}
            """),  # noqa: S608 - the guard is built from the transition table's constants
            (str(target(JobEvent.FINISH)), timestamps.stamp(now), job_id, token),
        )
        done = _one(cursor) or _lost(database, job_id, token, doing="publish")
        if (entry.library, entry.rel_path) != (done.library, done.rel_path):
            raise ValueError(
                f"job {job_id} encodes {done.library}/{done.rel_path}, not {entry.library}/{entry.rel_path}"
            )
        ledger.record(database, entry, encoded_at=encoded_at, output_size=output_size)
    return done


def lease_of(database: Database, job_id: int) -> Lease | None:
    """Return job_id's lease columns, or None if there is no such job."""
    row = database.execute(
        "SELECT host, lease_token, lease_expires_at, host_losses, lost_hosts FROM jobs WHERE id = ?", (job_id,)
    ).fetchone()
    return None if row is None else Lease(row[0], row[1], row[2], int(row[3]), row[4])


def _check_lease(lease: timedelta) -> None:
    if lease <= timedelta(0):
        raise ValueError(f"a lease must be longer than 0 seconds, got {lease}")


def _lost(database: Database, job_id: int, token: int, *, doing: str) -> NoReturn:
    """Raise LeaseLost for token on job_id, saying where the job is now."""
    row = database.execute("SELECT state, host, lease_token FROM jobs WHERE id = ?", (job_id,)).fetchone()
    if row is None:
        where = "there is no such job"
    elif row[2] != token and row[1] is not None:
        where = f"the job is {row[0]} on host {row[1]} under token {row[2]}"
    else:
        where = f"the job is {row[0]}"
    raise LeaseLost(
        f"job {job_id}: token {token} no longer holds it, cannot {doing}: {where}", job_id=job_id, token=token
    )
