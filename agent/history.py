"""History to look back on: which day a moment belongs to, what an ended encode leaves behind, and
the queue's length noted as it changes. The rows themselves are `agent.store.history`'s.

Days are calendar days on the agent host's local clock (its TZ, /etc/localtime): "today" on the
status page starts at the operator's midnight, as the "queue drained" notification's "today" does,
not at UTC's. A moment is turned into its day when it happens and kept as YYYY-MM-DD, so a
later change of the host's zone does not move what was recorded.

The queue's length is the jobs not finished yet: queued, running, or failed and waiting to be
retried (dead and cancelled ones wait for an operator and are not counted). The dispatcher asks
`QueueSampler` every tick; it reads the job tallies (a few rows) and writes only when the length or
the day changed, so an idle agent writes once a day. The first sample of each day also prunes
what is older than `RETENTION_DAYS`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from agent.store import StoreError
from agent.store.history import RETENTION_DAYS, Finished, Outcome
from agent.store.jobs import Job, JobState
from agent.store.order import source_size
from agent.store.protocol import Store
from agent.store.transitions import UNFINISHED


def local_day(moment: datetime, zone: tzinfo | None = None) -> date:
    """Given an aware moment, return its calendar day in zone (default: the host's local zone)."""
    if moment.tzinfo is None:
        raise ValueError(f"a moment must be aware, got the naive {moment!r}")
    return moment.astimezone(zone).date()


def first_day(today: date, days: int) -> date:
    """Return the first of the `days` days that end with today."""
    return today - timedelta(days=days - 1)


def ended(
    job: Job,
    *,
    outcome: Outcome,
    host: str,
    seconds: float | None,
    input_bytes: int | None = None,
    output_bytes: int | None = None,
    larger_output: str | None = None,
    error: str | None = None,
    now: datetime,
) -> Finished:
    """Return the history row of job, which ended now with outcome; input_bytes defaults to the size its
    fingerprint carries."""
    return Finished(
        finished_at=now.astimezone(UTC).isoformat(timespec="seconds"),
        day=local_day(now).isoformat(),
        library=job.library,
        rel_path=job.rel_path,
        job_id=job.id,
        host=host,
        outcome=outcome,
        seconds=None if seconds is None else max(0.0, round(seconds, 1)),
        input_bytes=input_bytes if input_bytes is not None else (source_size(job.fingerprint) or None),
        output_bytes=output_bytes,
        larger_output=larger_output or None,
        error=error,
    )


def failure_outcome(state: JobState) -> Outcome:
    """Given a failed job's new state, return its history outcome."""
    return Outcome.DEAD if state is JobState.DEAD else Outcome.FAILED


class QueueSampler:
    """Writes the queue's length into its day's row when it changed since the last write."""

    def __init__(self) -> None:
        self._written: tuple[str, int] | None = None  # (day, length) last written

    def sample(self, store: Store, *, now: datetime, log: Any) -> None:
        """Note the queue's length now; prune old history at the first sample of a day. A store
        that fails is logged and tried again at the next sample."""
        day = local_day(now)
        try:
            counts = store.counts()
            length = sum(counts.get(state, 0) for state in UNFINISHED)
            if self._written == (day.isoformat(), length):
                return
            if self._written is None or self._written[0] != day.isoformat():
                store.prune_history(before_day=(day - timedelta(days=RETENTION_DAYS)).isoformat())
            store.sample_queue(day=day.isoformat(), length=length)
        except StoreError as error:
            log.warning("queue length not noted in the history; trying again", error=str(error))
            return
        self._written = (day.isoformat(), length)
