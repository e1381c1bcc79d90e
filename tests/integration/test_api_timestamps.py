"""Every timestamp hb2r stores or serves has one format (agent.timestamps.stamp), so they agree.

The store compares its timestamps as text (a job's `not_before <= now`, a lease's expiry, a
revoked token's) and the status page and the live feed show the ones it stored next to the ones
the API makes: all must be ISO 8601 in UTC with microseconds, "+00:00", so that text order is
time order and a page or script parses every one the same way.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from aiohttp import WSMsgType

from agent.store import jobs
from tests.support.api import VIEWER_PASSWORD, Api

ONE_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")
DEADLINE = 5.0


async def test_the_feed_and_the_api_serve_timestamps_in_one_format_that_agree(api: Api) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    login = await api.client.post("/api/auth/login", json={"username": "viewer", "password": VIEWER_PASSWORD})
    session = await login.json()
    socket = await api.client.ws_connect("/api/realtime")
    await socket.send_json({"token": session["token"]})
    assert (await socket.receive_json(timeout=DEADLINE))["type"] == "hello"  # the feed follows changes from here
    # A whole second in another time zone: the stored text must still be UTC with microseconds.
    queued_at = datetime(2026, 12, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    job = jobs.enqueue(
        api.context.state.store.database,
        library="tv",
        rel_path="a.mkv",
        fingerprint="fingerprint-a",
        preset_hash="preset-hash",
        output_path="TV/a.mkv",
        reason="new",
        now=queued_at,
    )
    assert job is not None
    fed = await _job_message(socket, job.id)
    await socket.close()
    served = await (await api.client.get(f"/api/jobs/{job.id}", headers=await api.viewer())).json()
    paused = await api.client.post("/api/libraries/tv/pause", headers=await api.admin())
    assert paused.status == 200, await paused.text()
    status = await (await api.client.get("/api/status", headers=await api.viewer())).json()
    health = await (await api.client.get("/health")).json()
    after = datetime.now(UTC) + timedelta(seconds=1)

    made_now = {
        "session expires_at": session["expires_at"],
        "status started_at": status["started_at"],
        "tv condition since": _library(status, "tv")["condition"]["since"],
        "health timestamp": health["timestamp"],
    }
    stored = {
        "feed created_at": fed["created_at"],
        "feed updated_at": fed["updated_at"],
        "api created_at": served["created_at"],
        "api updated_at": served["updated_at"],
    }
    assert {name: text for name, text in {**made_now, **stored}.items() if not ONE_FORMAT.match(text)} == {}
    assert {datetime.fromisoformat(text) for text in stored.values()} == {queued_at}
    assert fed["created_at"] == served["created_at"] and fed["updated_at"] == served["updated_at"]
    for name in ("status started_at", "tv condition since", "health timestamp"):
        assert before <= datetime.fromisoformat(made_now[name]) <= after, name
    times = [*made_now.values(), *stored.values()]
    assert sorted(times) == sorted(times, key=datetime.fromisoformat)  # text order is time order


async def _job_message(socket: Any, job_id: int) -> dict[str, Any]:
    while True:
        message = await socket.receive(timeout=DEADLINE)
        assert message.type == WSMsgType.TEXT, message
        data = json.loads(message.data)
        if data["type"] == "job" and data["job"]["id"] == job_id:
            return dict(data["job"])


def _library(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(library for library in status["libraries"] if library["name"] == name)
