"""When passes run (agent.scheduler, real APScheduler on the test's loop), with an hourly interval
so that every pass seen here was asked for: a change noticed during a pass is not lost, and a
file waiting to become stable is looked at again when it is."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from functools import partial

from agent.scheduler import ReconcileSchedule
from tests.support.waiting import wait_for_async

HOURLY = timedelta(hours=1)


until = partial(wait_for_async, deadline=5.0, interval=0.02)


async def test_a_pass_asked_for_while_one_runs_runs_right_after_it() -> None:
    passes: list[float] = []
    running = 0
    overlapped = False
    release = asyncio.Event()

    async def reconcile() -> None:
        nonlocal running, overlapped
        running += 1
        overlapped = overlapped or running > 1
        passes.append(time.monotonic())
        if len(passes) == 1:
            await release.wait()  # the first pass is slow
        running -= 1

    schedule = ReconcileSchedule(reconcile, interval=HOURLY)
    schedule.start()
    try:
        await until(lambda: passes, what="the first pass")
        schedule.run_soon()  # e.g. inotify saw a new file while the first pass was walking
        schedule.run_soon()  # and another: folded into the same one
        await asyncio.sleep(0.1)  # the scheduler has had its chance to start a second (it must not)
        assert len(passes) == 1
        release.set()
        await until(lambda: len(passes) == 2, what="the pass asked for during the first")
        await asyncio.sleep(0.2)
        assert len(passes) == 2, "two requests during one pass make one pass after it, not two"
        assert not overlapped
    finally:
        schedule.shutdown()


async def test_a_pass_runs_when_the_first_waiting_file_becomes_stable() -> None:
    passes: list[datetime] = []

    async def reconcile() -> None:
        passes.append(datetime.now(UTC))

    schedule = ReconcileSchedule(reconcile, interval=HOURLY)
    schedule.start()
    try:
        await until(lambda: passes, what="the first pass")
        stable_at = datetime.now(UTC) + timedelta(seconds=0.5)
        schedule.wake_at(stable_at)
        await until(lambda: len(passes) == 2, what="the pass at stability", deadline=3.0)
        assert stable_at <= passes[1] < stable_at + timedelta(seconds=1)

        schedule.wake_at(datetime.now(UTC) + timedelta(seconds=0.3))
        schedule.wake_at(None)  # a later pass found nothing waiting any more
        await asyncio.sleep(0.6)
        assert len(passes) == 2
    finally:
        schedule.shutdown()
