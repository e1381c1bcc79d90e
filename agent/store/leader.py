"""One planner at a time: the leader lease row, and the fence every write of a pass goes through.

Why a row and not a session advisory lock: a leader that is frozen (SIGSTOP, a VM paused) or
cut off keeps its session, and with it an advisory lock, for as long as the server does not
notice; it would come back and write as if nothing happened. A lease row times out on the
database's clock whatever the leader does, and its epoch tells a write of the old leader from
one of the new.

The row (table `leader`, one row, id 1): the host holding it, its epoch, when the lease runs
out (ISO-8601 UTC text on the DATABASE's clock, as job leases are: `agent.store.leases`).
- `take_or_renew`: a host renews the lease it holds (same epoch) while it has not run out;
  anyone (itself included) takes a free or run-out lease with epoch + 1. One statement (an
  upsert guarded by its WHERE), so two hosts taking at once cannot both win. An epoch only
  ever grows: a lapsed leader that takes the lease back gets a new epoch too, and its passes
  from before the lapse are refused like anyone's.
- `resign`: the holder lets the lease run out now (a clean stop), so the next host need not
  wait for it; the epoch stays, the next taker bumps it.
- `FencedDatabase`: the reconcile pass writes through it. Each of its transactions first
  checks that the row still names this host and epoch and has not run out, and on PostgreSQL
  locks the row `FOR SHARE` while the transaction lasts: a taker's UPDATE of the row waits for
  an in-flight pass transaction to end, and the pass's next transaction sees the new epoch and
  raises NotLeader, having written nothing. A pass transaction left idle past the lease (its
  leader frozen mid-pass) is ended by the server, or else by the host taking over
  (`end_stale_transactions`), so that lock never outlives the lease for long. On PostgreSQL a
  host first reads the row without a lock and, while another host's lease runs, goes on
  following without queueing behind that leader's pass transaction for the row. A
  statement run outside a transaction gets a transaction of its own (its rows read before the
  commit). On SQLite (one host: its state folder's lock allows one agent) the check is the same
  and trivially holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Any, NamedTuple

from agent import timestamps
from agent.store.leases import database_now
from agent.store.sql import Cursor, Database, StoreError


class Leadership(NamedTuple):
    """A host's hold on the planner's lease: its writes are fenced by this epoch."""

    host: str
    epoch: int
    expires_at: str  # ISO-8601 UTC, on the database's clock


class NotLeader(Exception):
    """This host no longer holds the planner's lease under its epoch; nothing was written."""


def take_or_renew(database: Database, host: str, *, lease: timedelta) -> Leadership | None:
    """Renew host's unexpired lease (same epoch), or take a free or run-out one (epoch + 1); None if another holds it.

    Raise ValueError for an empty host name or a lease that is not positive.
    """
    if not host:
        raise ValueError("leadership needs the host's name")
    if lease <= timedelta(0):
        raise ValueError(f"a lease must be longer than 0 seconds, got {lease}")
    now = database_now(database)
    stamp, expires_at = timestamps.stamp(now), timestamps.stamp(now + lease)
    if database.dialect == "postgres":
        holder = database.execute("SELECT host, expires_at FROM leader WHERE id = 1").fetchone()
        if holder is not None and holder[0] != host:
            if str(holder[1]) > stamp:
                return None  # read without a lock: a follower never queues behind the leader's pass
            end_stale_transactions(database, holder=str(holder[0]), expired_at=str(holder[1]))
    row = database.execute(
        """
        INSERT INTO leader (id, host, epoch, expires_at, taken_at) VALUES (1, ?, 1, ?, ?)
        ON CONFLICT (id) DO UPDATE SET
            epoch = CASE WHEN leader.host = excluded.host AND leader.expires_at > ? THEN leader.epoch
                         ELSE leader.epoch + 1 END,
            taken_at = CASE WHEN leader.host = excluded.host AND leader.expires_at > ? THEN leader.taken_at
                            ELSE excluded.taken_at END,
            host = excluded.host,
            expires_at = excluded.expires_at
        WHERE leader.expires_at <= ? OR leader.host = excluded.host
        RETURNING host, epoch, expires_at
        """,
        (host, expires_at, stamp, stamp, stamp, stamp),
    ).fetchone()
    return None if row is None else Leadership(str(row[0]), int(row[1]), str(row[2]))


# PostgreSQL only. A former leader's transactions that began before its lease ran out and are still
# open: it is frozen or cut off mid-pass, and its share lock on the leader row would keep every
# other host from taking over. The server's idle timer (`idle_in_transaction_session_timeout`)
# does not end them all: it runs only once the server has answered a whole request, not while a
# pipelined batch (psycopg's executemany) is half sent. The taker ends them; whatever they wrote is
# rolled back, which the fence would have refused anyway. Hosts share one role, which may end its
# own sessions; a role that may not is told so by the server, and the taker then waits as before.
_END_STALE = """
    SELECT pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND application_name = ? AND xact_start < ?::timestamptz
"""


def session_name(host: str) -> str:
    """The application_name of `hb2r run` on host's connection (PostgreSQL keeps 63 bytes of it)."""
    return f"hb2r run on {host}"[:63]


def end_stale_transactions(database: Database, *, holder: str, expired_at: str) -> None:
    """End holder's transactions that began before its lease ran out at expired_at (PostgreSQL)."""
    with contextlib.suppress(StoreError):  # not allowed to (another role): the upsert waits instead
        database.execute(_END_STALE, (session_name(holder), expired_at)).fetchall()


def resign(database: Database, host: str, epoch: int) -> bool:
    """Let host's lease under epoch run out now; return whether it still held it."""
    stamp = timestamps.stamp(database_now(database))
    cursor = database.execute(
        "UPDATE leader SET expires_at = ? WHERE id = 1 AND host = ? AND epoch = ? AND expires_at > ?",
        (stamp, host, epoch, stamp),
    )
    return cursor.rowcount > 0


def current(database: Database) -> Leadership | None:
    """Return the lease as it is while it has not run out; None if no host holds it."""
    stamp = timestamps.stamp(database_now(database))
    row = database.execute(
        "SELECT host, epoch, expires_at FROM leader WHERE id = 1 AND expires_at > ?", (stamp,)
    ).fetchone()
    return None if row is None else Leadership(str(row[0]), int(row[1]), str(row[2]))


def last_epoch(database: Database) -> int:
    """Return the highest epoch ever handed out (0 if none)."""
    row = database.execute("SELECT epoch FROM leader WHERE id = 1").fetchone()
    return 0 if row is None else int(row[0])


_HELD = "SELECT epoch FROM leader WHERE id = 1 AND host = ? AND epoch = ? AND expires_at > ?"
# PostgreSQL: the row stays share-locked to the end of the transaction, so a taker's UPDATE waits for it.
_CHECK = {"sqlite": _HELD, "postgres": _HELD + " FOR SHARE"}


# PostgreSQL: a leader stopped mid-pass (SIGSTOP, a paused VM) would keep that share lock, and so
# the lease, for as long as it stays stopped. The server ends a pass transaction left idle past
# the lease it writes under (at least 1 s): its locks go, the next host takes over, and the
# thawed leader's next statement fails, having written nothing.
_IDLE_LIMIT_SQL = (
    "SELECT set_config('idle_in_transaction_session_timeout', "
    "greatest(1000, ceil(extract(epoch FROM (?::timestamptz - clock_timestamp())) * 1000))::bigint::text, true)"
)


def check(database: Database, leadership: Leadership) -> None:
    """Raise NotLeader unless leadership still holds the lease; on PostgreSQL lock the row for the transaction."""
    stamp = timestamps.stamp(database_now(database))
    row = database.execute(
        _CHECK[database.dialect],
        (leadership.host, leadership.epoch, stamp),
    ).fetchone()
    if row is None:
        holder = current(database)
        now_held = "no host holds it" if holder is None else f"{holder.host} holds it under epoch {holder.epoch}"
        raise NotLeader(
            f"host {leadership.host} no longer leads under epoch {leadership.epoch} ({now_held}); nothing was written"
        )


class _Rows:
    """A cursor's rows read inside the transaction that produced them."""

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    def fetchall(self) -> list[tuple[Any, ...]]:
        rows, self._rows = self._rows, []
        return rows

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class FencedDatabase:
    """A `Database` whose every transaction first checks (and on PostgreSQL share-locks) the leader row."""

    def __init__(self, database: Database, leadership: Leadership) -> None:
        self.inner = database
        self.leadership = leadership
        self.dialect = database.dialect
        self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        if self._depth:
            return self.inner.execute(sql, params)
        with self.transaction():
            cursor = self.inner.execute(sql, params)
            return _Rows(cursor.fetchall(), cursor.rowcount)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.transaction():
            self.inner.executemany(sql, rows)

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        with self.inner.transaction():
            check(self.inner, self.leadership)
            if self.dialect == "postgres":
                self.inner.execute(_IDLE_LIMIT_SQL, (self.leadership.expires_at,))
            self._depth = 1
            try:
                yield
            finally:
                self._depth = 0

    def close(self) -> None:
        """Nothing: the fenced view shares the store's connection, which its owner closes."""
