"""The HTTP API's routes and middlewares, on a real app over real SQLite (aiohttp's test client).

Jobs and ledger rows are made with the store's own functions, as the engine and dispatcher
make them; what the API answers is compared with what SQLite holds. Logins, tokens and roles
are tested elsewhere; here a token is only the way in.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import ClientResponse, web

from agent import __version__
from agent.api import app as api_app
from agent.api import health as health_module
from agent.api import openapi as openapi_module
from agent.api import params
from agent.api.app import init_app
from agent.api.middlewares import MAX_BODY_BYTES
from agent.dispatcher import Running
from agent.domain import LedgerEntry
from agent.engine import PassSummary
from agent.gate import Sample
from agent.mounts import WatchStatus
from agent.store import decisions, holds, jobs, ledger
from agent.store.db import open_database
from agent.store.scans import FullPass
from tests.support.api import ADMIN_HASH, VIEWER_HASH, Api, FixedSampler, build_context, write_config
from tests.support.api_calls import OUTPUT_FOLDER, add_job, get_health, get_status, now, scrape

from .conftest import MakeApi

GIB = 1024**3
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$")  # agent.timestamps
BCRYPT = re.compile(r"\$2[abxy]?\$\d{2}\$")
LEAKS = ("Traceback", "/work/", ".py")
CALM = Sample(cpu_percent=3.0, memory_percent=20.0, available_memory=16 * GIB, archive_free=1024 * GIB)
BUSY = Sample(cpu_percent=99.0, memory_percent=20.0, available_memory=16 * GIB, archive_free=1024 * GIB)


# --- helpers -------------------------------------------------------------------------------


def output_of(library: str, rel_path: str) -> str:
    return f"{OUTPUT_FOLDER[library]}/{rel_path}"


def add_output(api: Api, rel_path: str, *, library: str = "tv", size: int, output_size: int | None) -> None:
    ledger.record(
        api.context.state.store.database,
        LedgerEntry(library, rel_path, f"fp-{rel_path}", size, 1, "preset-fast", output_of(library, rel_path)),
        encoded_at=now().isoformat(),
        output_size=output_size,
    )


def source_file(api: Api, rel_path: str, *, library: str = "tv") -> Path:
    """Make the job's source file, so the dispatcher can size it."""
    source = next(entry.source for entry in api.context.state.config.libraries if entry.name == library) / rel_path
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(b"\0" * 4096)
    return source


def config_path_of(api: Api) -> Path:
    # write_config puts config.yaml beside the archive folder.
    return api.context.state.config.paths.archive.parent / "config.yaml"


def rows(connection: sqlite3.Connection, table: str) -> list[tuple[Any, ...]]:
    return connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()  # noqa: S608 - our table names


def tables(connection: sqlite3.Connection) -> list[str]:
    return [row[0] for row in connection.execute("SELECT name FROM sqlite_master ORDER BY name")]


async def json_error(response: ClientResponse, *statuses: int) -> dict[str, Any]:
    """Check that response is one of statuses with a JSON error body that leaks nothing; return the body."""
    text = await response.text()
    assert response.status in statuses, (response.status, text[:300])
    assert response.content_type == "application/json", text[:300]
    body = await response.json()
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    for leak in LEAKS:
        assert leak not in text, (leak, text[:300])
    return dict(body)


def library_of(status: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(next(library for library in status["libraries"] if library["name"] == name))


class RecordingLog:
    """Stands in for the agent's structlog logger: keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def _keep(self, level: str, event: str, fields: dict[str, Any]) -> None:
        self.lines.append((level, event, fields))

    def debug(self, event: str, **fields: Any) -> None:
        self._keep("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._keep("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._keep("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._keep("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        self._keep("exception", event, fields)

    def requests(self) -> list[tuple[str, dict[str, Any]]]:
        return [(level, fields) for level, event, fields in self.lines if event == "request"]


@pytest.fixture
async def secret_api(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[tuple[Api, str]]:
    """An agent whose config has auth.jwt_secret set (write_config only sets jwt_secret_file)."""
    root = tmp_path / "secret-agent"
    root.mkdir()
    config_path = write_config(root)
    secret = "jwt-secret-that-must-never-be-shown-0123456789"
    config_path.write_text(config_path.read_text().replace("auth: {", f"auth: {{jwt_secret: '{secret}', ", 1))
    context = build_context(config_path)
    try:
        client = await aiohttp_client(init_app(context))
        yield Api(context=context, client=client), secret
    finally:
        context.checker.close()
        context.state.store.database.close()


# --- GET /health ---------------------------------------------------------------------------


async def test_health_has_the_documented_shape_and_counts_the_queue(api: Api) -> None:
    status, body = await get_health(api)
    assert status == 200
    assert body["queue"] == {"queue_size": 0, "running_jobs": 0, "completed_jobs": 0}

    for index in range(3):
        add_job(api, f"queued-{index}.mkv")
    add_job(api, "retrying.mkv", state=jobs.JobState.FAILED)
    add_job(api, "running.mkv", library="movies", state=jobs.JobState.RUNNING)
    for index in range(4):
        add_job(api, f"done-{index}.mkv", library="movies", state=jobs.JobState.DONE)
    add_job(api, "dead.mkv", state=jobs.JobState.DEAD)
    add_job(api, "cancelled.mkv", state=jobs.JobState.CANCELLED)

    status, body = await get_health(api)
    assert status == 200
    documented = openapi_module.document()["components"]["schemas"]["Health"]
    assert set(body) == set(documented["properties"])
    assert {"status", "timestamp", "version", "system", "database", "queue"} <= set(documented["required"])
    assert body["status"] == "healthy"
    assert body["problems"] == []
    assert TIMESTAMP.match(body["timestamp"]), body["timestamp"]
    stamp = datetime.fromisoformat(body["timestamp"])
    assert abs((now() - stamp).total_seconds()) < 60
    assert body["version"] == __version__
    assert set(body["system"]) == {"cpu_percent", "memory_percent", "disk_free_gb"}
    assert set(body["system"]) == set(documented["properties"]["system"]["properties"])
    assert set(body["queue"]) == set(documented["properties"]["queue"]["properties"])
    assert 0 <= body["system"]["cpu_percent"] <= 100
    assert 0 < body["system"]["memory_percent"] <= 100
    free_gib = shutil.disk_usage(api.context.state.config.paths.archive).free / GIB
    assert body["system"]["disk_free_gb"] == pytest.approx(free_gib, abs=1.0)
    assert body["database"] == "healthy"
    # Failed jobs wait in the queue for their retry: they count in its size.
    assert body["queue"] == {"queue_size": 4, "running_jobs": 1, "completed_jobs": 4}


async def test_health_checks_are_cached_briefly(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health_module, "HEALTH_CACHE_SECONDS", 3600.0)  # a slow test must not see the cache expire
    assert (await get_health(api))[1]["queue"]["queue_size"] == 0
    add_job(api, "new.mkv")
    response = await api.client.get("/health")  # within the cache time: the database is not asked again
    assert (await response.json())["queue"]["queue_size"] == 0
    assert (await get_health(api))[1]["queue"]["queue_size"] == 1


@pytest.mark.parametrize("cause", ["planner-pause", "operator-hold", "library-error", "gate-short", "reload-refused"])
async def test_health_is_degraded_with_the_reason(make_api: MakeApi, cause: str) -> None:
    # The gate case uses a fixed host sample of 99 % CPU: real CPU load cannot be made on demand
    # (and must not be, on a shared test machine). The other cases are real state.
    api = await make_api(sampler=FixedSampler(BUSY if cause == "gate-short" else CALM))
    state = api.context.state
    assert (await get_health(api))[1]["status"] == "healthy"

    if cause == "planner-pause":
        state.paused_libraries["tv"] = "source folder tv is missing (is the disk mounted?)"
        expected = "source folder tv is missing"
    elif cause == "operator-hold":
        response = await api.client.post("/api/libraries/tv/pause", headers=await api.admin())
        assert response.status == 200, await response.text()
        expected = "library tv paused: paused by admin"
    elif cause == "library-error":
        state.broken_libraries["movies"] = "HandBrakeCLI has no preset 'Very Fast 480p30'"
        expected = "HandBrakeCLI has no preset"
    elif cause == "gate-short":
        job = add_job(api, "show/e01.mkv")
        source_file(api, job.rel_path)
        api.context.dispatcher.tick()
        assert api.context.dispatcher.running == {}
        assert jobs.get(state.store.database, job.id) == job  # held back, still queued
        assert api.context.dispatcher.short_of_resources
        expected = "CPU 99"
    else:
        state.reload_error = "config.yaml line 4: libraries.0.preset: no preset 'slow'"
        expected = "config reload refused"

    status, body = await get_health(api)
    assert (status, body["status"]) == (200, "degraded"), body
    assert any(expected in problem for problem in body["problems"]), body["problems"]
    assert body["database"] == "healthy"

    # Gone again once the cause is.
    if cause == "operator-hold":
        response = await api.client.post("/api/libraries/tv/resume", headers=await api.admin())
        assert response.status == 200
    elif cause == "gate-short":
        jobs.cancel(state.store.database, job.id, now=now())
        api.context.dispatcher.tick()  # nothing waits: nothing is held back
    else:
        state.paused_libraries.clear()
        state.broken_libraries.clear()
        state.reload_error = None
    assert (await get_health(api))[1]["status"] == "healthy"


async def test_health_is_not_degraded_when_jobs_wait_for_their_time_window(make_api: MakeApi) -> None:
    api = await make_api(sampler=FixedSampler(CALM), extra="limits: {windows: ['00:00-00:01']}\n")
    job = add_job(api, "show/e01.mkv")
    source_file(api, job.rel_path)
    minute = datetime.now().astimezone()
    if minute.hour == 0 and minute.minute <= 1:
        pytest.skip("the test's time window is now")
    api.context.dispatcher.tick()
    assert api.context.dispatcher.blocked_reasons  # outside the window: held back, but not for want of resources
    status, body = await get_health(api)
    assert (status, body["status"]) == (200, "healthy"), body


async def test_health_is_unhealthy_while_the_archive_is_missing(api: Api) -> None:
    archive = api.context.state.config.paths.archive
    moved = archive.with_name("archive-unmounted")
    archive.rename(moved)
    try:
        status, body = await get_health(api)
        assert (status, body["status"]) == (503, "unhealthy")
        assert any("missing" in problem for problem in body["problems"]), body["problems"]
    finally:
        moved.rename(archive)
    assert (await get_health(api))[1]["status"] == "healthy"


async def test_health_is_unhealthy_while_the_database_cannot_be_read(api: Api) -> None:
    add_job(api, "queued.mkv")
    api.context.state.store.database.close()
    status, body = await get_health(api)
    assert (status, body["status"], body["database"]) == (503, "unhealthy", "unreachable")
    assert any("state database" in problem for problem in body["problems"]), body["problems"]
    # The agent's connection back (the fixture closes whichever connection the state holds).
    api.context.state.store.database = open_database(api.context.state.config.paths.state_dir)
    status, body = await get_health(api)
    assert (status, body["status"], body["queue"]["queue_size"]) == (200, "healthy", 1)


@pytest.fixture
def read_only_archive(api: Api) -> Iterator[Path]:
    """Make the archive a read-only bind mount of itself (root only); unmount it afterwards."""
    archive = api.context.state.config.paths.archive
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root and mount(8)")
    bound = subprocess.run(["mount", "--bind", str(archive), str(archive)], capture_output=True, check=False)
    if bound.returncode != 0:
        pytest.skip(f"mount --bind is not permitted here: {bound.stderr.decode(errors='replace').strip()}")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,ro,bind", str(archive)], capture_output=True, check=False)
        if remounted.returncode != 0:
            pytest.skip(f"remount read-only is not permitted: {remounted.stderr.decode(errors='replace').strip()}")
        yield archive
    finally:
        subprocess.run(["umount", str(archive)], check=True)


async def test_health_is_unhealthy_while_the_archive_is_read_only(api: Api, read_only_archive: Path) -> None:
    with pytest.raises(OSError):
        (read_only_archive / "probe").write_bytes(b"")  # the mount really is read-only
    status, body = await get_health(api)
    assert (status, body["status"]) == (503, "unhealthy")
    assert any("read-only" in problem for problem in body["problems"]), body["problems"]


# --- GET /api/status -----------------------------------------------------------------------


async def test_status_conditions_with_reason_and_a_stable_since(api: Api) -> None:
    state = api.context.state
    first = await get_status(api)
    assert [library["name"] for library in first["libraries"]] == ["tv", "movies"]
    tv = library_of(first, "tv")["condition"]
    assert (tv["status"], tv["reason"]) == ("Progressing", "waiting for the first scan")
    assert datetime.fromisoformat(tv["since"]).tzinfo is not None
    assert library_of(await get_status(api), "tv")["condition"] == tv  # nothing changed: same since

    add_job(api, "e01.mkv")
    add_job(api, "e02.mkv", state=jobs.JobState.RUNNING)
    state.last_pass = PassSummary(now(), 0.5, {"transcode": 2, "wait": 1}, {"tv": 1}, pending=False)
    status = await get_status(api)
    tv = library_of(status, "tv")["condition"]
    assert tv["status"] == "Progressing"
    assert tv["reason"] == "1 running, 1 queued, 1 waiting to be stable"
    movies = library_of(status, "movies")["condition"]
    assert (movies["status"], movies["reason"]) == ("Ready", "every stable file has its transcode")
    again = await get_status(api)
    assert library_of(again, "movies")["condition"] == movies
    assert library_of(again, "tv")["condition"] == tv

    state.broken_libraries["movies"] = "HandBrakeCLI is missing"
    state.paused_libraries["tv"] = "files vanished: 40 of 40 (is the disk mounted?)"
    status = await get_status(api)
    assert library_of(status, "movies")["condition"]["status"] == "Error"
    assert library_of(status, "movies")["condition"]["reason"] == "HandBrakeCLI is missing"
    assert library_of(status, "tv")["condition"]["status"] == "Paused"
    assert library_of(status, "tv")["condition"]["reason"].startswith("files vanished")
    assert library_of(await get_status(api), "tv")["condition"] == library_of(status, "tv")["condition"]


async def test_status_counts_space_plan_generation_and_gate(api: Api) -> None:
    state = api.context.state
    made = {
        jobs.JobState.DONE: 2,
        jobs.JobState.QUEUED: 3,
        jobs.JobState.RUNNING: 1,
        jobs.JobState.FAILED: 1,
        jobs.JobState.DEAD: 2,
        jobs.JobState.CANCELLED: 1,
    }
    for job_state, count in made.items():
        for index in range(count):
            add_job(api, f"{job_state}-{index}.mkv", state=job_state)
    add_job(api, "film.mkv", library="movies", state=jobs.JobState.DONE)
    add_output(api, "a.mkv", size=1_000, output_size=400)
    add_output(api, "b.mkv", size=2_000, output_size=500)
    add_output(api, "c.mkv", size=9_000, output_size=None)  # an output from before sizes were kept
    add_output(api, "film.mkv", library="movies", size=10 * GIB, output_size=2 * GIB)
    state.last_pass = PassSummary(
        finished_at=datetime(2024, 5, 1, 3, 0, tzinfo=UTC),
        seconds=1.23456,
        counts={"transcode": 4, "wait": 2},
        waiting={"tv": 2},
        pending=True,
    )
    state.config_generation = 3
    state.full_passes["tv"] = FullPass("2024-05-01T02:00:00+00:00", 4.5678)

    status = await get_status(api)
    tv = library_of(status, "tv")
    assert tv["last_full_pass"] == {"at": "2024-05-01T02:00:00+00:00", "seconds": 4.568}
    assert library_of(status, "movies")["last_full_pass"] is None  # none since the agent started
    assert tv["counts"] == {
        "done": 2, "queued": 3, "running": 1, "failed": 1, "dead": 2, "cancelled": 1, "waiting": 2,
    }  # fmt: skip
    assert tv["space"] == {"outputs": 3, "input_bytes": 3_000, "output_bytes": 900, "saved_bytes": 2_100}
    movies = library_of(status, "movies")
    assert movies["counts"] == {
        "done": 1, "queued": 0, "running": 0, "failed": 0, "dead": 0, "cancelled": 0, "waiting": 0,
    }  # fmt: skip
    assert movies["space"] == {
        "outputs": 1, "input_bytes": 10 * GIB, "output_bytes": 2 * GIB, "saved_bytes": 8 * GIB,
    }  # fmt: skip
    assert (tv["source"], tv["output"], tv["preset"]) == (str(state.config.libraries[0].source), "TV", "fast")
    assert status["plan"] == {
        "finished_at": "2024-05-01T03:00:00.000000+00:00",
        "seconds": 1.235,
        "counts": {"transcode": 4, "wait": 2},
        "pending": True,
    }
    assert status["config_generation"] == 3
    assert status["reload_error"] is None
    assert status["version"] == __version__
    assert status["uptime_seconds"] >= 0
    assert status["gate"] == {"admitting": True, "reasons": [], "short_of_resources": False}
    assert status["running"] == []


async def test_status_says_how_each_library_notices_new_files(api: Api) -> None:
    state = api.context.state
    reason = "/mnt/movies is on nfs4 (nas:/movies at /mnt/movies), where changes made by other machines send no events"
    state.watch["tv"] = WatchStatus("events", None, 12)
    state.watch["movies"] = WatchStatus("polling", reason, 0)

    status = await get_status(api)

    assert library_of(status, "tv")["watch"] == {"mode": "events", "reason": None, "folders": 12}
    assert library_of(status, "movies")["watch"] == {"mode": "polling", "reason": reason, "folders": 0}
    state.watch.clear()  # not looked at yet (the agent's first walk is still going on)
    assert library_of(await get_status(api), "tv")["watch"] is None


async def test_status_before_the_first_pass_has_no_plan(api: Api) -> None:
    status = await get_status(api)
    assert status["plan"] is None
    assert status["config_generation"] == 1
    assert library_of(status, "tv")["space"] == {"outputs": 0, "input_bytes": 0, "output_bytes": 0, "saved_bytes": 0}


async def test_status_and_system_show_the_gate_holding_jobs_back(make_api: MakeApi) -> None:
    # A fixed sample of 99 % CPU: real CPU load cannot be made on demand.
    api = await make_api(sampler=FixedSampler(BUSY))
    job = add_job(api, "show/e01.mkv")
    source_file(api, job.rel_path)
    api.context.dispatcher.tick()
    gate = (await get_status(api))["gate"]
    assert gate["admitting"] is False
    assert gate["short_of_resources"] is True
    assert any(reason.startswith("CPU 99") for reason in gate["reasons"]), gate
    response = await api.client.get("/api/system", headers=await api.viewer())
    system = await response.json()
    assert system["gate"] == gate
    assert system["cpu"]["percent"] == 99.0


# --- GET /api/jobs -------------------------------------------------------------------------


async def test_jobs_newest_first_and_the_cursor_walks_every_job_once(api: Api) -> None:
    made = [add_job(api, f"e{index:02d}.mkv", library="tv" if index % 3 else "movies") for index in range(25)]
    headers = await api.viewer()

    response = await api.client.get("/api/jobs", headers=headers)
    listed = (await response.json())["jobs"]
    assert [job["id"] for job in listed] == sorted((job.id for job in made), reverse=True)
    assert (await response.json())["next_cursor"] is None

    seen: list[int] = []
    pages: list[int] = []
    cursor: str | None = None
    for _ in range(10):
        query = {"limit": "10", **({"cursor": cursor} if cursor else {})}
        response = await api.client.get("/api/jobs", params=query, headers=headers)
        assert response.status == 200, await response.text()
        page = await response.json()
        pages.append(len(page["jobs"]))
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [10, 10, 5]
    assert seen == sorted((job.id for job in made), reverse=True)


async def test_jobs_cursor_walk_shows_each_job_once_while_jobs_are_queued_and_change(api: Api) -> None:
    made = [add_job(api, f"e{index:02d}.mkv", state=jobs.JobState.DEAD if index % 4 else jobs.JobState.QUEUED)
            for index in range(30)]  # fmt: skip
    headers = await api.viewer()
    seen: list[int] = []
    cursor: str | None = None
    for page_number in range(20):
        query = {"limit": "4", "state": "dead", **({"cursor": cursor} if cursor else {})}
        response = await api.client.get("/api/jobs", params=query, headers=headers)
        assert response.status == 200, await response.text()
        page = await response.json()
        seen += [job["id"] for job in page["jobs"]]
        add_job(api, f"new{page_number:02d}.mkv", state=jobs.JobState.DEAD)  # newer than the cursor
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == sorted((job.id for job in made if job.state is jobs.JobState.DEAD), reverse=True)


async def test_jobs_page_boundary_has_no_empty_last_page(api: Api) -> None:
    for index in range(20):
        add_job(api, f"e{index:02d}.mkv")
    headers = await api.viewer()
    first = await (await api.client.get("/api/jobs", params={"limit": "10"}, headers=headers)).json()
    second = await (
        await api.client.get("/api/jobs", params={"limit": "10", "cursor": first["next_cursor"]}, headers=headers)
    ).json()
    assert len(second["jobs"]) == 10
    assert second["next_cursor"] is None


async def test_jobs_filters_by_state_and_library(api: Api) -> None:
    dead_tv = add_job(api, "a.mkv", state=jobs.JobState.DEAD)
    dead_movies = add_job(api, "b.mkv", library="movies", state=jobs.JobState.DEAD)
    done_tv = add_job(api, "c.mkv", state=jobs.JobState.DONE)
    queued_movies = add_job(api, "d.mkv", library="movies")
    headers = await api.viewer()

    async def ids(**query: str) -> list[int]:
        response = await api.client.get("/api/jobs", params=query, headers=headers)
        assert response.status == 200, await response.text()
        return [job["id"] for job in (await response.json())["jobs"]]

    assert await ids(state="dead") == [dead_movies.id, dead_tv.id]
    assert await ids(library="movies") == [queued_movies.id, dead_movies.id]
    assert await ids(state="dead", library="tv") == [dead_tv.id]
    assert await ids(state="done") == [done_tv.id]
    assert await ids(state="running") == []
    assert await ids(library="anime") == []


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=100000", "limit"),
        ("limit=x", "limit"),
        ("limit=-5", "limit"),
        ("limit=1.5", "limit"),
        ("state=bogus", "state"),
        ("state=QUEUED", "state"),
        ("library=..", "library"),
        ("cursor=not-a-cursor!!", "cursor"),
        (f"cursor={base64.urlsafe_b64encode(b'hello world').decode()}", "cursor"),
        (f"cursor={base64.urlsafe_b64encode(b'before:0').decode()}", "cursor"),
        (f"cursor={base64.urlsafe_b64encode(b'before:-3').decode()}", "cursor"),
        (f"cursor={base64.urlsafe_b64encode(b'after:12').decode()}", "cursor"),
        (f"cursor={base64.urlsafe_b64encode(b'before:12').decode()}%0A", "cursor"),
        ("cursor=" + "A" * 80, "cursor"),
        ("limit=10&limit=20", "limit"),
        ("state=dead&state=done", "state"),
        ("sort=id", "sort"),
    ],
)
async def test_jobs_bad_parameters_are_a_400_naming_the_parameter(api: Api, query: str, named: str) -> None:
    response = await api.client.get(f"/api/jobs?{query}", headers=await api.viewer())
    body = await json_error(response, 400)
    assert body["error"] == "bad_request"
    assert named in body["message"], body


# --- GET /api/jobs/{id} --------------------------------------------------------------------


async def test_job_detail_has_progress_attempts_error_and_stderr_lines(api: Api) -> None:
    failed = add_job(
        api,
        "show/e01.mkv",
        state=jobs.JobState.FAILED,
        error="HandBrakeCLI exited with code 3",
        stderr_tail=["Opening show/e01.mkv...", "x264 [error]: malloc failed", "Encode failed (error 3)."],
    )
    headers = await api.viewer()
    response = await api.client.get(f"/api/jobs/{failed.id}", headers=headers)
    assert response.status == 200, await response.text()
    detail = await response.json()
    assert detail["id"] == failed.id
    assert (detail["library"], detail["path"], detail["output"]) == ("tv", "show/e01.mkv", "TV/show/e01.mkv")
    assert (detail["state"], detail["attempts"]) == ("failed", 1)
    assert detail["error"] == "HandBrakeCLI exited with code 3"
    assert detail["stderr_tail"] == [
        "Opening show/e01.mkv...",
        "x264 [error]: malloc failed",
        "Encode failed (error 3).",
    ]
    assert detail["progress"] is None
    assert detail["retry_at"] == failed.not_before
    assert detail["fingerprint"] == failed.fingerprint

    running = add_job(api, "show/e02.mkv", state=jobs.JobState.RUNNING)
    jobs.record_progress(api.context.state.store.database, running.id, progress=12.5, now=now())
    detail = await (await api.client.get(f"/api/jobs/{running.id}", headers=headers)).json()
    assert (detail["state"], detail["progress"], detail["stderr_tail"]) == ("running", 12.5, [])

    # While the dispatcher holds the encode, its in-memory progress is the fresher one.
    current = jobs.get(api.context.state.store.database, running.id)
    assert current is not None
    api.context.dispatcher.running[running.id] = Running(current, progress=37.456, fps=24.5, eta_seconds=90)
    try:
        detail = await (await api.client.get(f"/api/jobs/{running.id}", headers=headers)).json()
        assert (detail["progress"], detail["fps"], detail["eta_seconds"], detail["suspended"]) == (
            37.46, 24.5, 90, False,
        )  # fmt: skip
        job_schema = openapi_module.document()["components"]["schemas"]["Job"]["properties"]
        assert set(detail) <= set(job_schema), set(detail) - set(job_schema)
        listed = (await (await api.client.get("/api/jobs", headers=headers)).json())["jobs"]
        assert next(job for job in listed if job["id"] == running.id)["progress"] == 37.46
        running_now = (await get_status(api))["running"]
        assert [(item["id"], item["progress"]) for item in running_now] == [(running.id, 37.46)]
    finally:
        api.context.dispatcher.running.clear()


async def test_unknown_job_is_404(api: Api) -> None:
    body = await json_error(await api.client.get("/api/jobs/424242", headers=await api.viewer()), 404)
    assert body["error"] == "not_found"
    assert "424242" in body["message"]


@pytest.mark.parametrize(
    "raw",
    ["abc", "-1", "0", "00", "007", "1.0", "1e3", "+1", " 1", "1%0A", "%0A1", "１", "99999999999999999999999", "0x10"],
)
async def test_job_ids_that_are_not_positive_whole_numbers_are_a_400(api: Api, raw: str) -> None:
    add_job(api, "a.mkv")  # job 1 exists: a lax parser would find it
    headers = await api.admin()
    for method, path in (
        ("GET", f"/api/jobs/{raw}"),
        ("POST", f"/api/jobs/{raw}/retry"),
        ("POST", f"/api/jobs/{raw}/cancel"),
        ("POST", f"/api/jobs/{raw}/priority"),
    ):
        response = await api.client.request(method, path, headers=headers)
        body = await json_error(response, 400)
        assert "job id" in body["message"], body


# --- POST /api/jobs/{id}/retry and /cancel --------------------------------------------------


async def test_retry_a_dead_job_queues_it_again(api: Api) -> None:
    dead = add_job(api, "a.mkv", state=jobs.JobState.DEAD)
    response = await api.client.post(f"/api/jobs/{dead.id}/retry", headers=await api.admin())
    assert response.status == 200, await response.text()
    answered = await response.json()
    assert (answered["id"], answered["state"], answered["attempts"]) == (dead.id, "queued", 0)
    stored = jobs.get(api.context.state.store.database, dead.id)
    assert stored is not None
    assert (stored.state, stored.attempts) == (jobs.JobState.QUEUED, 0)


async def test_retry_a_done_job_is_a_409_and_changes_nothing(api: Api) -> None:
    done = add_job(api, "a.mkv", state=jobs.JobState.DONE)
    body = await json_error(await api.client.post(f"/api/jobs/{done.id}/retry", headers=await api.admin()), 409)
    assert body["error"] == "conflict"
    assert f"job {done.id} is done" in body["message"], body
    assert jobs.get(api.context.state.store.database, done.id) == done


async def test_retry_and_cancel_of_an_unknown_job_are_404(api: Api) -> None:
    headers = await api.admin()
    for action in ("retry", "cancel"):
        body = await json_error(await api.client.post(f"/api/jobs/777/{action}", headers=headers), 404)
        assert "777" in body["message"]


async def test_cancel_a_queued_job(api: Api) -> None:
    queued = add_job(api, "a.mkv")
    response = await api.client.post(f"/api/jobs/{queued.id}/cancel", headers=await api.admin())
    assert response.status == 200, await response.text()
    assert (await response.json())["state"] == "cancelled"
    stored = jobs.get(api.context.state.store.database, queued.id)
    assert stored is not None and stored.state is jobs.JobState.CANCELLED
    # A cancelled job cannot be cancelled again.
    body = await json_error(await api.client.post(f"/api/jobs/{queued.id}/cancel", headers=await api.admin()), 409)
    assert "cancelled" in body["message"]


# --- POST /api/jobs/{id}/priority ----------------------------------------------------------


async def test_an_admin_moves_a_waiting_job_to_the_front_and_it_is_the_next_to_start(api: Api) -> None:
    add_job(api, "first.mkv", library="tv")
    last = add_job(api, "last.mkv", library="movies")
    store = api.context.state.store

    response = await api.client.post(f"/api/jobs/{last.id}/priority", headers=await api.admin())

    assert response.status == 200, await response.text()
    assert (await response.json())["id"] == last.id
    assert store.next_runnable(now=now(), library_order=["tv", "movies"]) == store.get_job(last.id)


async def test_moving_a_job_that_is_not_waiting_is_a_409_and_a_user_may_not(api: Api) -> None:
    done = add_job(api, "a.mkv", state=jobs.JobState.DONE)
    queued = add_job(api, "b.mkv")

    body = await json_error(await api.client.post(f"/api/jobs/{done.id}/priority", headers=await api.admin()), 409)
    assert f"job {done.id} is done: only a queued or failed job can be moved to the front" in body["message"]
    await json_error(await api.client.post("/api/jobs/777/priority", headers=await api.admin()), 404)
    await json_error(await api.client.post(f"/api/jobs/{queued.id}/priority", headers=await api.viewer()), 403)
    assert api.context.state.store.get_job(queued.id) == queued  # nothing changed


# --- libraries: pause, resume, scan ---------------------------------------------------------


async def test_pause_holds_the_library_across_a_restart_and_resume_lets_it_run(
    make_api: MakeApi, aiohttp_client: Any
) -> None:
    api = await make_api(sampler=FixedSampler(CALM))
    context = api.context
    job = add_job(api, "show/e01.mkv")
    source_file(api, job.rel_path)
    admin = await api.admin()

    response = await api.client.post("/api/libraries/tv/pause", headers=admin)
    assert response.status == 200, await response.text()
    answered = await response.json()
    assert (answered["name"], answered["paused"], answered["condition"]["status"]) == ("tv", True, "Paused")
    tv = library_of(await get_status(api), "tv")["condition"]
    assert tv["status"] == "Paused"
    assert "paused by admin" in tv["reason"]
    assert library_of(await get_status(api), "movies")["condition"]["status"] != "Paused"

    stored = rows(context.state.store.database, "library_holds")
    assert [(library, "paused by admin" in reason) for library, reason, _ in stored] == [("tv", True)]
    # A second agent on the same config (a restart) loads the hold from SQLite, as `hb2r run` does.
    restarted = build_context(config_path_of(api))
    try:
        restarted.state.held_libraries = holds.load_holds(restarted.state.store.database)
        assert list(restarted.state.held_libraries) == ["tv"]
        again = Api(context=restarted, client=await aiohttp_client(init_app(restarted)))
        tv_after_restart = library_of(await get_status(again), "tv")["condition"]
        assert (tv_after_restart["status"], tv_after_restart["reason"]) == ("Paused", tv["reason"])
    finally:
        restarted.checker.close()
        restarted.state.store.database.close()

    context.dispatcher.tick()
    assert context.dispatcher.running == {}
    assert jobs.get(context.state.store.database, job.id) == job  # still queued

    response = await api.client.post("/api/libraries/tv/resume", headers=admin)
    assert response.status == 200, await response.text()
    assert (await response.json())["paused"] is False
    assert rows(context.state.store.database, "library_holds") == []
    tv = library_of(await get_status(api), "tv")["condition"]
    assert tv["status"] in ("Ready", "Progressing")

    context.dispatcher.tick()  # now the job may start
    try:
        started = jobs.get(context.state.store.database, job.id)
        assert started is not None and started.state is jobs.JobState.RUNNING
    finally:
        await context.dispatcher.stop()  # cancels the encode task before HandBrakeCLI starts
    tasks = [entry.task for entry in context.dispatcher.running.values() if entry.task is not None]
    deadline = time.monotonic() + 10
    while not all(task.done() for task in tasks) and time.monotonic() < deadline:
        await asyncio.sleep(0)  # let the cancelled task finish; no waiting for time to pass
    assert all(task.done() for task in tasks)
    stopped = jobs.get(context.state.store.database, job.id)
    assert stopped is not None and stopped.state is jobs.JobState.QUEUED  # requeued by stop()


async def test_pause_twice_keeps_the_first_hold_and_resume_of_a_running_library_is_harmless(api: Api) -> None:
    admin = await api.admin()
    first = await (await api.client.post("/api/libraries/movies/pause", headers=admin)).json()
    second = await (await api.client.post("/api/libraries/movies/pause", headers=admin)).json()
    assert second["condition"]["since"] == first["condition"]["since"]
    assert len(rows(api.context.state.store.database, "library_holds")) == 1
    assert (await api.client.post("/api/libraries/tv/resume", headers=admin)).status == 200
    assert list(api.context.state.held_libraries) == ["movies"]


async def test_a_hold_on_a_library_removed_from_the_config_is_harmless_and_can_be_lifted(api: Api) -> None:
    admin = await api.admin()
    assert (await api.client.post("/api/libraries/movies/pause", headers=admin)).status == 200
    state = api.context.state
    state.config = state.config.model_copy(update={"libraries": state.config.libraries[:1]})  # a reload drops it
    state.config_generation += 1
    status, body = await get_health(api)
    assert (status, body["status"]) == (200, "healthy"), body
    assert [library["name"] for library in (await get_status(api))["libraries"]] == ["tv"]
    await json_error(await api.client.post("/api/libraries/movies/pause", headers=admin), 404)

    response = await api.client.post("/api/libraries/movies/resume", headers=admin)
    assert response.status == 200, await response.text()
    assert await response.json() == {"name": "movies", "paused": False, "condition": None}
    assert rows(state.store.database, "library_holds") == []
    await json_error(await api.client.post("/api/libraries/movies/resume", headers=admin), 404)


@pytest.mark.parametrize(
    ("name", "status"),
    [("anime", 404), ("TV", 404), ("-tv", 400), (".tv", 400), ("tv\n", 400), ("t v", 400), ("a" * 65, 400)],
)
async def test_pause_and_resume_of_a_bad_or_unknown_library(api: Api, name: str, status: int) -> None:
    admin = await api.admin()
    for action in ("pause", "resume"):
        response = await api.client.post(f"/api/libraries/{quote(name, safe='')}/{action}", headers=admin)
        await json_error(response, status)
    assert rows(api.context.state.store.database, "library_holds") == []
    assert api.context.state.held_libraries == {}


async def test_scan_is_requested(api: Api) -> None:
    response = await api.client.post("/api/scan", headers=await api.admin())
    assert response.status == 202
    assert await response.json() == {"scan": "requested"}
    assert len(api.context.scans) == 1  # type: ignore[attr-defined]


# --- GET /api/system and /api/config --------------------------------------------------------


async def test_system_reports_the_host(api: Api) -> None:
    response = await api.client.get("/api/system", headers=await api.viewer())
    assert response.status == 200
    system = await response.json()
    limits = api.context.state.config.limits
    assert 0 <= system["cpu"]["percent"] <= 100
    assert system["cpu"]["limit_percent"] == limits.cpu_percent
    assert system["cpu"]["cores"] == os.cpu_count()
    assert 0 < system["memory"]["percent"] <= 100
    assert system["memory"]["available_bytes"] > 0
    assert system["memory"]["min_free_bytes"] == limits.min_free_memory
    assert len(system["load"]) == 3 and all(value >= 0 for value in system["load"])
    archive = system["archive"]
    assert archive["path"] == str(api.context.state.config.paths.archive)
    assert archive["total_bytes"] >= archive["free_bytes"] > 0
    assert archive["min_free_bytes"] == limits.min_free_disk
    assert system["max_jobs"] >= 1
    assert system["running"] == []
    assert system["gate"] == {"admitting": True, "reasons": [], "short_of_resources": False}


async def test_config_redacts_password_hashes_and_the_jwt_secret(secret_api: tuple[Api, str]) -> None:
    api, secret = secret_api
    response = await api.client.get("/api/config", headers=await api.admin())
    assert response.status == 200, await response.text()
    text = await response.text()
    body = await response.json()
    assert body["generation"] == 1
    assert body["config"]["auth"]["jwt_secret"] == "<redacted>"
    assert [user["password_hash"] for user in body["config"]["users"]] == ["<redacted>", "<redacted>"]
    assert secret not in text
    assert ADMIN_HASH not in text and VIEWER_HASH not in text
    assert not BCRYPT.search(text), BCRYPT.search(text)
    assert [library["name"] for library in body["config"]["libraries"]] == ["tv", "movies"]
    await json_error(await api.client.get("/api/config", headers=await api.viewer()), 403)


# --- hostile input --------------------------------------------------------------------------

HOSTILE = [
    pytest.param("1 OR 1=1", id="or-1=1"),
    pytest.param("'; DROP TABLE jobs; --", id="drop-table"),
    pytest.param("1; DELETE FROM users", id="delete-users"),
    pytest.param("1' OR '1'='1", id="quote-or"),
    pytest.param("../../etc/passwd", id="traversal"),
    pytest.param("..%2F..%2Fetc%2Fpasswd", id="encoded-traversal"),
    pytest.param("%00", id="percent-nul"),
    pytest.param("1\x00", id="nul"),
    pytest.param("tv\n", id="newline"),
    pytest.param("A" * 3000, id="long-letters"),
    pytest.param("1" * 3000, id="long-digits"),
    pytest.param("../" * 1000, id="long-traversal"),
]


@pytest.mark.parametrize("value", HOSTILE)
async def test_hostile_input_in_every_parameter_is_refused_cleanly(api: Api, value: str) -> None:
    for index in range(3):
        add_job(api, f"e{index}.mkv", state=jobs.JobState.DEAD if index else jobs.JobState.QUEUED)
    connection = api.context.state.store.database
    before = {table: rows(connection, table) for table in ("jobs", "users", "library_holds", "ledger")}
    schema = tables(connection)
    admin = await api.admin()
    quoted = quote(value, safe="")

    requests: list[tuple[str, str, dict[str, str] | None]] = []
    # As typed (the client quotes what it must, and drops a raw newline as browsers do) and quoted.
    for piece in {value, quoted} if value.isprintable() else {quoted}:
        requests += [
            ("GET", f"/api/jobs/{piece}", None),
            ("POST", f"/api/jobs/{piece}/retry", None),
            ("POST", f"/api/jobs/{piece}/cancel", None),
            ("POST", f"/api/jobs/{piece}/priority", None),
            ("POST", f"/api/libraries/{piece}/pause", None),
            ("POST", f"/api/libraries/{piece}/resume", None),
        ]
    for parameter in ("state", "library", "limit", "cursor"):
        requests.append(("GET", "/api/jobs", {parameter: value}))
        requests.append(("GET", f"/api/jobs?{parameter}={quoted}", None))
    requests.append(("GET", f"/api/jobs?{quoted}=1", None))
    for method, path, query in requests:
        response = await api.client.request(method, path, params=query, headers=admin)
        if method == "GET" and response.url.path == "/":
            # The client resolved the dot segments away and asked for the status page: no API call.
            assert response.status == 200 and response.content_type == "text/html", path
            continue
        await json_error(response, 400, 404)

    for body in (
        {"username": value, "password": "whatever"},
        {"username": "admin", "password": value},
        {"username": value, "password": value},
        {"username": "admin", "password": "x", value[:100]: "extra"},
    ):
        await json_error(await api.client.post("/api/auth/login", json=body), 400, 401)
    await json_error(await api.client.post("/api/auth/login", data=value.encode()), 400)

    assert {table: rows(connection, table) for table in before} == before
    assert tables(connection) == schema
    assert api.context.state.held_libraries == {}


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b'{"username": ' + b"[" * 20_000 + b"]" * 20_000 + b', "password": "x"}', id="deep-array"),
        pytest.param(b'{"username": "a", "password": ' + b'{"a":' * 6_000 + b"1" + b"}" * 6_000 + b"}", id="deep-obj"),
        pytest.param(b'{"username": "\\ud800", "password": "x"}', id="lone-surrogate"),
        pytest.param(b'{"username": "admin", "password": "x"', id="truncated"),
        pytest.param(b"\xff\xfe{}", id="not-utf8"),
        pytest.param(b'["admin", "x"]', id="not-an-object"),
        pytest.param(b"", id="empty"),
        pytest.param(b'{"username": NaN, "password": "x"}', id="nan"),
        pytest.param(b'{"username": 1e999, "password": "x"}', id="huge-number"),
        pytest.param(b'{"username": "a", "username": "admin", "password": "x"}', id="duplicate-key"),
    ],
)
async def test_malformed_login_bodies_are_a_400_or_401(api: Api, payload: bytes) -> None:
    assert len(payload) <= MAX_BODY_BYTES
    response = await api.client.post("/api/auth/login", data=payload, headers={"Content-Type": "application/json"})
    await json_error(response, 400, 401)


# --- errors and limits ---------------------------------------------------------------------


async def test_unknown_route_is_a_json_404(api: Api) -> None:
    for path in ("/nope", "/api/nope", "/api/jobs/1/explode", "/api/libraries/tv", "/api/jobs/"):
        body = await json_error(await api.client.get(path, headers=await api.viewer()), 404)
        assert body["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("POST", "/api/status", "GET"),
        ("DELETE", "/api/jobs/1", "GET"),
        ("GET", "/api/scan", "POST"),
        ("PUT", "/api/libraries/tv/pause", "POST"),
        ("GET", "/api/auth/login", "POST"),
        ("POST", "/health", "GET,HEAD"),
    ],
)
async def test_wrong_method_is_a_json_405_with_allow(api: Api, method: str, path: str, allowed: str) -> None:
    response = await api.client.request(method, path, headers=await api.admin())
    body = await json_error(response, 405)
    assert body["error"] == "method_not_allowed"
    assert response.headers["Allow"] == allowed


async def test_a_body_over_64_kib_is_a_json_413(api: Api) -> None:
    too_big = b'{"username": "' + b"a" * MAX_BODY_BYTES + b'", "password": "x"}'
    body = await json_error(await api.client.post("/api/auth/login", data=too_big), 413)
    assert body["error"] == "payload_too_large"
    admin = await api.admin()
    await json_error(await api.client.post("/api/scan", data=too_big, headers=admin), 413)
    assert api.context.scans == []  # type: ignore[attr-defined]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds while reading
        for _ in range(5):
            yield b"a" * (MAX_BODY_BYTES // 4)

    await json_error(await api.client.post("/api/auth/login", data=chunks()), 413)

    # Exactly 64 KiB is allowed: the login is refused for its content, not its size.
    head, tail = b'{"username": "admin", "password": "', b'"}'
    at_limit = head + b"p" * (MAX_BODY_BYTES - len(head) - len(tail)) + tail
    assert len(at_limit) == MAX_BODY_BYTES
    await json_error(await api.client.post("/api/auth/login", data=at_limit), 400)


async def test_an_exception_in_a_handler_is_a_json_500_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No real fault makes the ledger read fail on demand while the rest works, so the store
    # function is replaced by one raising an error whose text names a file, as a traceback would.
    def broken(connection: sqlite3.Connection) -> dict[str, ledger.LibraryBytes]:
        raise RuntimeError("disk I/O error in /work/main/agent/store/ledger.py line 80")

    headers = await api.viewer()
    log = RecordingLog()
    api.context.log = log
    monkeypatch.setattr(ledger, "bytes_by_library", broken)
    body = await json_error(await api.client.get("/api/status", headers=headers), 500)
    assert body["error"] == "internal_error"
    assert "disk I/O" not in body["message"]
    assert [fields["status"] for _, fields in log.requests()] == [500]
    assert any(level == "exception" and event == "request failed" for level, event, _ in log.lines)


async def test_a_closed_database_is_a_json_500(api: Api) -> None:
    headers = await api.viewer()
    api.context.state.store.database.close()
    body = await json_error(await api.client.get("/api/status", headers=headers), 500)
    assert "Cannot operate" not in body["message"]
    await json_error(await api.client.get("/metrics"), 500)


async def test_the_audit_log_has_user_method_path_status_and_no_query(api: Api) -> None:
    headers = await api.viewer()
    log = RecordingLog()
    api.context.log = log
    cursor = params.encode_cursor(123456)
    await api.client.get("/api/jobs", params={"limit": "5", "cursor": cursor}, headers=headers)
    await api.client.get("/health")
    await api.client.get("/metrics")
    await api.client.get("/api/nope")
    (level, fields), health, metrics, missing = log.requests()
    assert level == "info"
    assert {key: fields[key] for key in ("user", "method", "path", "status")} == {
        "user": "viewer",
        "method": "GET",
        "path": "/api/jobs",
        "status": 200,
    }
    assert fields["latency_ms"] >= 0
    assert cursor not in repr(log.lines)
    assert (health[0], health[1]["path"], metrics[0]) == ("debug", "/health", "debug")
    assert (missing[0], missing[1]["status"], missing[1]["user"]) == ("info", 404, None)


# --- CORS ----------------------------------------------------------------------------------

CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers")


def cors_headers(response: ClientResponse) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name.lower().startswith("access-control-")}


async def test_cors_for_a_configured_origin(make_api: MakeApi) -> None:
    api = await make_api(cors='["https://nas.example"]')
    origin = {"Origin": "https://nas.example"}

    response = await api.client.get("/api/status", headers={**origin, **await api.viewer()})
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://nas.example"
    assert "Origin" in response.headers.getall("Vary")

    # Error answers carry them too, so the page can read the error.
    response = await api.client.get("/api/status", headers=origin)
    await json_error(response, 401)
    assert response.headers["Access-Control-Allow-Origin"] == "https://nas.example"
    response = await api.client.post("/api/auth/login", data=b"x" * (MAX_BODY_BYTES + 1), headers=origin)
    await json_error(response, 413)
    assert response.headers["Access-Control-Allow-Origin"] == "https://nas.example"

    response = await api.client.options(
        "/api/jobs/1/retry",
        headers={**origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"},
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "https://nas.example"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]


async def test_cors_refuses_another_origin(make_api: MakeApi) -> None:
    api = await make_api(cors='["https://nas.example"]')
    evil = {"Origin": "https://evil.example"}
    response = await api.client.get("/api/status", headers={**evil, **await api.viewer()})
    assert response.status == 200
    assert cors_headers(response) == {}
    response = await api.client.options("/api/status", headers={**evil, "Access-Control-Request-Method": "GET"})
    await json_error(response, 403)
    assert cors_headers(response) == {}
    # A look-alike is not the configured origin either.
    for lookalike in ("https://nas.example.evil.example", "http://nas.example", "https://nas.example:8443"):
        response = await api.client.get("/health", headers={"Origin": lookalike})
        assert cors_headers(response) == {}, lookalike


async def test_no_cors_headers_without_configured_origins(api: Api) -> None:
    origin = {"Origin": "https://nas.example"}
    for response in (
        await api.client.get("/health", headers=origin),
        await api.client.get("/api/status", headers={**origin, **await api.viewer()}),
        await api.client.get("/api/nope", headers=origin),
    ):
        assert cors_headers(response) == {}
    preflight = await api.client.options("/api/status", headers={**origin, "Access-Control-Request-Method": "GET"})
    assert preflight.status == 403
    assert cors_headers(preflight) == {}


# --- GET /metrics --------------------------------------------------------------------------


async def test_metrics_match_the_jobs_and_the_ledger(api: Api) -> None:
    made = {("tv", "queued"): 3, ("tv", "dead"): 1, ("movies", "done"): 2, ("movies", "failed"): 1}
    for (library, job_state), count in made.items():
        for index in range(count):
            add_job(api, f"{job_state}-{index}.mkv", library=library, state=jobs.JobState(job_state))
    add_output(api, "a.mkv", size=5_000, output_size=1_000)
    add_output(api, "film.mkv", library="movies", size=8_000, output_size=3_000)
    add_output(api, "old.mkv", library="movies", size=4_000, output_size=None)

    samples = await scrape(api)
    by_state = samples["hb2r_jobs"]
    for library in ("tv", "movies"):
        for job_state in jobs.JobState:
            labels = (("library", library), ("state", str(job_state)))
            assert by_state[labels] == made.get((library, str(job_state)), 0), labels
    assert len(by_state) == 2 * len(jobs.JobState)
    saved = samples["hb2r_space_saved_bytes"]
    assert saved == {(("library", "movies"),): 5_000.0, (("library", "tv"),): 4_000.0}
    assert samples["hb2r_archive_outputs"][(("library", "movies"),)] == 2
    assert samples["hb2r_archive_input_bytes"][(("library", "movies"),)] == 8_000
    assert samples["hb2r_archive_output_bytes"][(("library", "tv"),)] == 1_000
    assert samples["hb2r_gate_open"] == {(): 1.0}
    assert samples["hb2r_running_encodes"] == {(): 0.0}
    assert samples["hb2r_config_generation"] == {(): 1.0}
    assert samples["hb2r_build_info"] == {(("version", __version__),): 1.0}
    assert "hb2r_scan_duration_seconds" not in samples
    assert "hb2r_encode_seconds_count" not in samples

    api.context.metrics.job_finished(library="tv", outcome="done", seconds=42.0, bytes_read=5_000, bytes_written=1_000)
    api.context.state.last_pass = PassSummary(now(), 2.5, {}, {}, pending=False)
    samples = await scrape(api)
    labels = (("library", "tv"), ("outcome", "done"))
    assert samples["hb2r_encode_seconds_count"][labels] == 1
    assert samples["hb2r_encode_seconds_sum"][labels] == 42.0
    assert samples["hb2r_encode_seconds_bucket"][tuple(sorted((*labels, ("le", "60.0"))))] == 1
    assert samples["hb2r_encode_seconds_bucket"][tuple(sorted((*labels, ("le", "30.0"))))] == 0
    assert samples["hb2r_encode_read_bytes_total"][(("library", "tv"),)] == 5_000
    assert samples["hb2r_encode_written_bytes_total"][(("library", "tv"),)] == 1_000
    assert samples["hb2r_scan_duration_seconds"] == {(): 2.5}


async def test_metrics_show_the_gate_closed(make_api: MakeApi) -> None:
    # A fixed sample of 99 % CPU: real CPU load cannot be made on demand.
    api = await make_api(sampler=FixedSampler(BUSY))
    job = add_job(api, "show/e01.mkv")
    source_file(api, job.rel_path)
    api.context.dispatcher.tick()
    samples = await scrape(api)
    assert samples["hb2r_gate_open"] == {(): 0.0}
    assert samples["hb2r_gate_blocking_reasons"][()] >= 1


# --- OpenAPI -------------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


async def test_openapi_documents_exactly_the_routes_and_their_security(api: Api) -> None:
    response = await api.client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["version"] == __version__
    paths: dict[str, dict[str, Any]] = document["paths"]
    documented = {(method.upper(), path) for path, methods in paths.items() for method in methods}

    app = api.client.app
    assert isinstance(app, web.Application)
    routed = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    table = {(method, path) for method, path, _ in api_app.ROUTES}
    assert table == routed
    assert table - documented == set(), "routes missing from the document"
    assert documented - routed == set(), "documented routes that do not exist"

    schemes = document["components"]["securitySchemes"]
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        operation = paths[route.resource.canonical][route.method.lower()]
        role = getattr(route.handler, "required_role", None)
        where = f"{route.method} {route.resource.canonical}"
        if role is not None:
            assert operation.get("security"), f"{where} needs a token but does not say so"
            assert all(set(requirement) <= set(schemes) for requirement in operation["security"]), where
            assert "401" in operation["responses"], where
            if role == "admin":
                assert "403" in operation["responses"], where
        elif route.resource.canonical != "/api/realtime":  # authenticates by its first message
            assert "security" not in operation, f"{where} needs no token but says it does"
        for name in re.findall(r"{(\w+)}", route.resource.canonical):
            declared = [item for item in operation.get("parameters", []) if item["in"] == "path"]
            assert [item["name"] for item in declared] == [name], where
            assert declared[0]["required"] is True
        assert operation["responses"], where

    for ref in _refs(document):
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in document["components"]["schemas"], ref
    states = next(item for item in paths["/api/jobs"]["get"]["parameters"] if item["name"] == "state")
    assert states["schema"]["enum"] == [str(state) for state in jobs.JobState]
    assert document["components"]["schemas"]["Job"]["properties"]["state"]["enum"] == states["schema"]["enum"]
    assert (await api.client.get("/api/openapi.json", headers={"Authorization": "Bearer nonsense"})).status == 200


async def test_health_and_metrics_and_openapi_need_no_token(api: Api) -> None:
    for path in ("/health", "/metrics", "/api/openapi.json"):
        assert (await api.client.get(path)).status == 200, path
    for path in ("/api/status", "/api/system", "/api/jobs", "/api/jobs/1", "/api/config"):
        await json_error(await api.client.get(path), 401)


async def test_rule_copies_and_larger_output_fallbacks_are_counted_through_their_indexes(api: Api) -> None:
    database = api.context.state.store.database
    for index in range(3):  # a rule's copies, as the engine records them
        entry = LedgerEntry("tv", f"c{index}.mkv", f"fp-c{index}", 100, 1, "copy:preset-fast", f"TV/c{index}.mkv")
        ledger.record(database, entry, encoded_at=now().isoformat(), output_size=100)
    fallback = LedgerEntry("movies", "f.mkv", "fp-f", 100, 1, "copy:preset-fast", "Movies/f.mkv")
    ledger.record(database, fallback, encoded_at=now().isoformat(), output_size=100)  # as the dispatcher does
    decisions.note_larger_output(database, output_path="Movies/f.mkv", then="copy")
    add_output(api, "encoded.mkv", size=1_000, output_size=400)

    tv, movies = library_of(await get_status(api), "tv"), library_of(await get_status(api), "movies")
    assert tv["rules"] == {"copies": 3, "skips": 0, "larger_output": {"copy": 0, "keep": 0, "skip": 0}}
    assert movies["rules"] == {"copies": 0, "skips": 0, "larger_output": {"copy": 1, "keep": 0, "skip": 0}}
    samples = await scrape(api)
    assert samples["hb2r_rule_copies"] == {(("library", "movies"),): 0.0, (("library", "tv"),): 3.0}
    assert samples["hb2r_larger_output_fallbacks"][(("library", "movies"), ("then", "copy"))] == 1.0

    # a re-encode of the same path is no fallback any more
    encoded = dataclasses.replace(fallback, preset_hash="preset-fast")
    ledger.record(database, encoded, encoded_at=now().isoformat(), output_size=9)
    assert library_of(await get_status(api), "movies")["rules"]["larger_output"]["copy"] == 0

    # the counts read the few rows marked, never the whole ledger
    plans = [
        " ".join(str(row[-1]) for row in database.execute(f"EXPLAIN QUERY PLAN {query}").fetchall())
        for query in (
            "SELECT library, count(*) FROM ledger"
            " WHERE substr(preset_hash, 1, 5) = 'copy:' AND larger_output IS NULL GROUP BY library",
            "SELECT library, larger_output, count(*) FROM ledger WHERE larger_output IS NOT NULL"
            " GROUP BY library, larger_output",
        )
    ]
    assert "ledger_rule_copies" in plans[0] and "ledger_larger_outputs" in plans[1], plans
