"""When the reconcile pass runs: at once on start, every `scan.interval`, and on demand
(after a config reload, when an operator asks).

Timed on the event loop's clock, which is monotonic, never on the wall clock: when NTP or an
operator steps the wall clock back an hour, a schedule that computes "next run = last run +
interval" in wall time (as APScheduler's interval trigger does) runs no pass for that hour.
One pass at a time: a pass asked for while one runs is folded into one run right after it,
so a slow disk never piles up passes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta

from agent.logs import get_logger

log = get_logger(__name__)


class ReconcileSchedule:
    def __init__(self, reconcile: Callable[[], Awaitable[object]], *, interval: timedelta) -> None:
        self._reconcile = reconcile
        self._interval = interval.total_seconds()
        self._due_now = True  # the first pass runs at start
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start running passes; call from inside the running event loop."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="reconcile-schedule")

    def run_soon(self) -> None:
        """Run a pass now (or right after the one that is running)."""
        self._due_now = True
        self._wake.set()

    def set_interval(self, interval: timedelta) -> None:
        """Space passes by interval from now on (counted from the start of the last pass)."""
        self._interval = interval.total_seconds()
        self._wake.set()

    def shutdown(self) -> None:
        """Stop: no pass starts any more, and one running is cancelled."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_start = loop.time()
        while True:
            if not self._due_now:
                wait = last_start + self._interval - loop.time()
                if wait > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                    continue  # woken: asked for a pass, or the interval changed
            self._due_now = False
            last_start = loop.time()
            try:
                await self._reconcile()
            except Exception:  # a failing pass is logged; the next one is still due
                log.exception("reconcile pass failed")
