"""The wall clock stepping back (NTP, an operator, a VM restored): what must keep working.

Time is injected where the code takes `now`; the one place that reads the wall clock inside
a library (APScheduler computes its next run in wall time) is given a stepped-back clock by
replacing `datetime` in that module: the machine's own clock cannot be stepped back by a test.
"""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from agent.auth import tokens
from agent.scheduler import ReconcileSchedule
from agent.store import jobs, users
from tests.support.api import VIEWER_PASSWORD, Api
from tests.support.realtime import enqueue, hello, job_message, next_message


async def test_a_job_change_written_after_the_clock_stepped_back_still_reaches_the_live_feed(api: Api) -> None:
    connection = api.context.state.store.database
    socket = await hello(api)
    job = enqueue(api, "a")  # stamped with the real time
    await next_message(socket, job_message(job.id, "queued"))

    stepped_back = datetime.now(UTC) - timedelta(hours=1)
    jobs.mark_running(connection, job.id, now=stepped_back)
    await next_message(socket, job_message(job.id, "running"))
    jobs.mark_done(connection, job.id, now=stepped_back + timedelta(seconds=1))
    await next_message(socket, job_message(job.id, "done"))
    await socket.close()


@pytest.mark.parametrize(
    "step_back, accepted",
    [
        pytest.param(timedelta(seconds=0), True, id="same-clock"),
        pytest.param(timedelta(seconds=90), True, id="a-token-issued-before-a-small-step-back-is-kept"),
        pytest.param(tokens.CLOCK_LEEWAY + timedelta(seconds=1), False, id="a-token-from-far-in-the-future-is-refused"),
    ],
)
async def test_a_token_issued_just_before_the_clock_stepped_back_is_still_accepted(
    api: Api, step_back: timedelta, accepted: bool
) -> None:
    connection, store = api.context.state.store.database, api.context.state.store
    user = users.find(connection, "viewer")
    assert user is not None
    issued_at = datetime.now(UTC)
    token = tokens.issue_token(secret=api.context.secret, user=user, lifetime=timedelta(hours=1), now=issued_at)
    if accepted:
        session = tokens.authenticate(store, secret=api.context.secret, token=token.token, now=issued_at - step_back)
        assert session.user == "viewer"
    else:
        with pytest.raises(tokens.AuthError):
            tokens.authenticate(store, secret=api.context.secret, token=token.token, now=issued_at - step_back)
    assert VIEWER_PASSWORD  # the viewer of tests/support/api.py


async def test_passes_keep_their_interval_when_the_wall_clock_steps_back(monkeypatch: pytest.MonkeyPatch) -> None:
    offset = {"by": timedelta(0)}

    class SteppedBack(datetime):
        @classmethod
        def now(cls, tz: object = None) -> SteppedBack:  # type: ignore[override]
            return datetime.now(tz) - offset["by"]  # type: ignore[arg-type,return-value]

    for name in ("apscheduler.schedulers.base", "agent.scheduler"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "datetime"):
            monkeypatch.setattr(module, "datetime", SteppedBack)
    passes: list[float] = []

    async def reconcile() -> None:
        passes.append(time.monotonic())
        offset["by"] = timedelta(hours=1)  # the wall clock steps back an hour after the first pass

    schedule = ReconcileSchedule(reconcile, interval=timedelta(seconds=0.2))
    schedule.start()
    try:
        end = time.monotonic() + 5.0
        while len(passes) < 3:
            assert time.monotonic() < end, f"only {len(passes)} passes in 5 s with a 0.2 s interval"
            schedule.check_clock()  # as the agent's watcher does every few seconds
            await asyncio.sleep(0.05)
    finally:
        schedule.shutdown()
