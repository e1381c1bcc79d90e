"""APScheduler wiring, and nothing else: when the reconcile pass runs.

The pass runs every `scan.interval`, at once on start, and on demand (after a config
reload, when an operator asks). One pass at a time: a pass that is due while the last one
still runs is folded into one (`coalesce`, `max_instances=1`), so a slow disk never piles
up passes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

JOB_ID = "reconcile"


class ReconcileSchedule:
    def __init__(self, reconcile: Callable[[], Awaitable[object]], *, interval: timedelta) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            reconcile,
            IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC),
            id=JOB_ID,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )

    def start(self) -> None:
        """Start running passes; call from inside the running event loop."""
        self._scheduler.start()

    def run_soon(self) -> None:
        """Run a pass now (or right after the one that is running)."""
        self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    def set_interval(self, interval: timedelta) -> None:
        self._scheduler.reschedule_job(JOB_ID, trigger=IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC))

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
