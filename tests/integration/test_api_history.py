"""GET /api/history on the real app over real SQLite (aiohttp's test client).

The history rows are written with the store's own calls, as the dispatcher writes them when an
encode ends (tests/e2e/test_history_page.py has a real agent write them); what the API answers
is compared with what was written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.history import ended, local_day
from agent.store.history import Outcome
from agent.store.jobs import Job, JobState
from tests.support.api import Api


def a_job(job_id: int, rel_path: str) -> Job:
    stamp = datetime.now(UTC).isoformat()
    return Job(job_id, "tv", rel_path, f"5000:{rel_path}", "p1", f"TV/{rel_path}", "new", JobState.DONE, 1,
               None, None, None, None, stamp, stamp)  # fmt: skip


def record(
    api: Api,
    job_id: int,
    rel_path: str,
    *,
    outcome: Outcome,
    days_ago: int = 0,
    seconds: float | None = 60.0,
    input_bytes: int | None = None,
    output_bytes: int | None = None,
    error: str | None = None,
) -> None:
    """Record an ended encode as the dispatcher does, days_ago days before today."""
    now = datetime.now(UTC)
    row = ended(a_job(job_id, rel_path), outcome=outcome, host="nas", seconds=seconds, input_bytes=input_bytes,
                output_bytes=output_bytes, error=error, now=now)  # fmt: skip
    day = (local_day(now) - timedelta(days=days_ago)).isoformat()
    api.context.state.store.record_history(row._replace(day=day))


async def get_history(api: Api, query: str = "") -> dict[str, Any]:
    response = await api.client.get(f"/api/history{query}", headers=await api.viewer())
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def test_history_needs_a_token(api: Api) -> None:
    response = await api.client.get("/api/history")
    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"


async def test_history_has_one_entry_per_day_ending_today_and_the_newest_encodes_first(api: Api) -> None:
    store = api.context.state.store
    record(api, 1, "a.mkv", outcome=Outcome.DONE, days_ago=2, input_bytes=3000, output_bytes=1000)
    record(api, 2, "b.mkv", outcome=Outcome.DONE, input_bytes=2000, output_bytes=500, seconds=125.0)
    record(api, 3, "bad.mkv", outcome=Outcome.DEAD, error="No title found.", seconds=None)
    record(api, 4, "old.mkv", outcome=Outcome.DONE, days_ago=10, input_bytes=9000, output_bytes=1000)
    today = local_day(datetime.now(UTC))
    store.sample_queue(day=today.isoformat(), length=6)
    store.sample_queue(day=today.isoformat(), length=1)

    body = await get_history(api, "?days=7")

    assert body["days"] == 7 and body["today"] == today.isoformat()
    daily = body["daily"]
    assert [entry["day"] for entry in daily] == [(today - timedelta(days=6 - n)).isoformat() for n in range(7)]
    assert daily[-1] == {
        "day": today.isoformat(), "encodes": 1, "failures": 1, "input_bytes": 2000, "output_bytes": 500,
        "saved_bytes": 1500, "encode_seconds": 125.0, "queue_peak": 6, "queue_last": 1,
    }  # fmt: skip
    assert (daily[-3]["encodes"], daily[-3]["saved_bytes"], daily[-3]["queue_peak"]) == (1, 2000, None)
    assert all(entry["encodes"] == 0 and entry["queue_peak"] is None for entry in daily[:4])
    recent = body["recent"]  # old.mkv ended before the 7 days
    assert [(event["path"], event["outcome"]) for event in recent] == [
        ("bad.mkv", "dead"), ("b.mkv", "done"), ("a.mkv", "done"),
    ]  # fmt: skip
    dead, done, _ = recent
    assert (dead["error"], dead["seconds"], dead["saved_bytes"]) == ("No title found.", None, None)
    assert dead["input_bytes"] == 5000  # the size its fingerprint carries
    assert (done["library"], done["job_id"], done["host"], done["seconds"]) == ("tv", 2, "nas", 125.0)
    assert (done["input_bytes"], done["output_bytes"], done["saved_bytes"]) == (2000, 500, 1500)


async def test_history_defaults_to_30_days_and_takes_up_to_366(api: Api) -> None:
    record(api, 1, "old.mkv", outcome=Outcome.DONE, days_ago=300, input_bytes=9000, output_bytes=1000)

    default = await get_history(api)
    longest = await get_history(api, "?days=366")
    one = await get_history(api, "?days=1")

    assert default["days"] == 30 and len(default["daily"]) == 30
    assert default["recent"] == []
    assert len(longest["daily"]) == 366
    assert [event["path"] for event in longest["recent"]] == ["old.mkv"]
    assert len(one["daily"]) == 1


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("?days=0", "days: Input should be greater than or equal to 1"),
        ("?days=367", "days: Input should be less than or equal to 366"),
        ("?days=-5", "days: Input should be greater than or equal to 1"),
        ("?days=thirty", "days: Input should be a valid integer"),
        ("?days=1.5", "days: Input should be a valid integer"),
        ("?days=", "days: Input should be a valid integer"),
        ("?days=7&days=8", "query parameter 'days' is given 2 times"),
        ("?day=7", "day: Extra inputs are not permitted"),
    ],
)
async def test_bad_input_is_a_400_naming_the_problem(api: Api, query: str, says: str) -> None:
    response = await api.client.get(f"/api/history{query}", headers=await api.viewer())

    assert response.status == 400
    body = await response.json()
    assert body["error"] == "bad_request"
    assert body["message"].startswith(says), body["message"]
