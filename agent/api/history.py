"""GET /api/history?days=30: what the agent did, day by day, and its last encodes and failures.

The same data the status page's "Recent" section and charts show. `daily` holds one entry per day
of the `days` that end today (the agent host's local day, `agent.history`), oldest first: a day
with no row (nothing ended, the agent was off) is there with zeros and a null queue. `recent`
holds the newest RECENT_LIMIT encodes and failures of those days, newest first. Both are read
from the daily rows and the event rows `agent.store.history` keeps: a handful of rows, not the jobs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from agent import history
from agent.api import params
from agent.api.context import context_of
from agent.api.security import requires
from agent.store.history import Day, Event

MAX_DAYS = 366
DEFAULT_DAYS = 30
RECENT_LIMIT = 25


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int = Field(default=DEFAULT_DAYS, ge=1, le=MAX_DAYS, description="How many days, ending today.")


@requires("user")
async def history_of_days(request: web.Request) -> web.Response:
    asked = params.query(request, HistoryQuery)
    now = datetime.now(UTC)
    today = history.local_day(now)
    first = history.first_day(today, asked.days)
    store = context_of(request).state.store
    rows = store.history_days(first.isoformat())
    events = store.recent_history(first_day=first.isoformat(), limit=RECENT_LIMIT)
    return web.json_response(
        {
            "days": asked.days,
            "today": today.isoformat(),
            "utc_offset": now.astimezone().isoformat(timespec="seconds")[-6:],  # the zone the days are in
            "daily": daily_view(rows, first=first, days=asked.days),
            "recent": [event_view(event) for event in events],
        }
    )


def daily_view(rows: list[Day], *, first: date, days: int) -> list[dict[str, Any]]:
    """Given the day rows there are, return one entry per day from first, `days` of them."""
    by_day = {row.day: row for row in rows}
    series = []
    for offset in range(days):
        day = (first + timedelta(days=offset)).isoformat()
        row = by_day.get(day) or Day(day, 0, 0, 0, 0, 0.0, None, None)
        series.append(
            {
                "day": day,
                "encodes": row.encodes,
                "failures": row.failures,
                "input_bytes": row.input_bytes,
                "output_bytes": row.output_bytes,
                "saved_bytes": row.input_bytes - row.output_bytes,
                "encode_seconds": round(row.encode_seconds, 1),
                "queue_peak": row.queue_peak,
                "queue_last": row.queue_last,
            }
        )
    return series


def event_view(event: Event) -> dict[str, Any]:
    finished = event.finished
    saved = None
    if finished.input_bytes is not None and finished.output_bytes is not None:
        saved = finished.input_bytes - finished.output_bytes
    return {
        "id": event.id,
        "finished_at": finished.finished_at,
        "day": finished.day,
        "library": finished.library,
        "path": finished.rel_path,
        "job_id": finished.job_id,
        "host": finished.host,
        "outcome": str(finished.outcome),
        "seconds": finished.seconds,
        "input_bytes": finished.input_bytes,
        "output_bytes": finished.output_bytes,
        "saved_bytes": saved,
        "larger_output": finished.larger_output,
        "error": finished.error,
    }
