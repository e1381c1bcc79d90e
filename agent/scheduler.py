"""APScheduler wiring, and nothing else: when the reconcile pass runs.

The pass runs every `scan.interval`, at once on start, and on demand (after a config
reload, when an operator asks, when inotify saw a change), and once when the first file
waiting to become stable does (`wake_at`), so that a new file is queued `stable_after` after
it settled, not at the next timed pass (an hour later with `scan.interval: 1h`). One pass at a
time: every request made while a pass runs is folded into ONE more pass right after it (a
change seen during a pass's walk may have been missed by it; APScheduler alone would drop a
request made while the job runs), so a slow disk never piles up passes.

APScheduler computes "next run = last run + interval" in wall time: when NTP or an operator
steps the wall clock back an hour, it would run no pass for that hour. `check_clock()`,
called by the agent every few seconds on the event loop's monotonic clock, notices such a
step (the wall clock moved back against the monotonic one) and runs a pass at once, which
anchors the interval on the new wall time. A step forward needs nothing: the pass is then
overdue and runs once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

JOB_ID = "reconcile"
WAKE_JOB_ID = "reconcile-when-stable"
# How far the wall clock may fall back against the monotonic clock before it counts as a step
# (NTP slews small differences; it steps only large ones).
CLOCK_STEP_SECONDS = 2.0


class ReconcileSchedule:
    def __init__(self, reconcile: Callable[[], Awaitable[object]], *, interval: timedelta) -> None:
        self._reconcile = reconcile
        self._running = False
        self._again = False
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.add_job(
            self._one_at_a_time,
            IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC),
            id=JOB_ID,
            max_instances=2,  # the second only notes "once more" (see _one_at_a_time)
            coalesce=True,
            misfire_grace_time=None,
            next_run_time=datetime.now(UTC),
        )
        self._clock_offset = _wall_minus_monotonic()

    def start(self) -> None:
        """Start running passes; call from inside the running event loop."""
        self._scheduler.start()

    def run_soon(self) -> None:
        """Run a pass now (or right after the one that is running)."""
        self._scheduler.modify_job(JOB_ID, next_run_time=datetime.now(UTC))

    def wake_at(self, when: datetime | None) -> None:
        """Run one pass at `when` (a waiting file becomes stable then); None: no such pass."""
        if when is None:
            if self._scheduler.get_job(WAKE_JOB_ID) is not None:
                self._scheduler.remove_job(WAKE_JOB_ID)
            return
        self._scheduler.add_job(
            self._one_at_a_time,
            DateTrigger(run_date=when, timezone=UTC),
            id=WAKE_JOB_ID,
            replace_existing=True,
            misfire_grace_time=None,
        )

    async def _one_at_a_time(self) -> None:
        """Run the pass; if one runs already, have it run once more when it ends."""
        if self._running:
            self._again = True
            return
        self._running = True
        try:
            while True:
                self._again = False
                await self._reconcile()
                if not self._again:
                    break
        finally:
            self._running = False

    def set_interval(self, interval: timedelta) -> None:
        self._scheduler.reschedule_job(JOB_ID, trigger=IntervalTrigger(seconds=interval.total_seconds(), timezone=UTC))

    def check_clock(self) -> bool:
        """Run a pass now if the wall clock stepped back since the last check; return whether it did."""
        offset = _wall_minus_monotonic()
        stepped_back = self._clock_offset - offset > CLOCK_STEP_SECONDS
        self._clock_offset = offset
        if stepped_back and self._scheduler.running:
            self.run_soon()
        return stepped_back

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)


def _wall_minus_monotonic() -> float:
    return datetime.now(UTC).timestamp() - time.monotonic()
