"""Calls the HTTP API tests make against an `Api` (tests/support/api.py): jobs queued and moved to a state
as the engine and the dispatcher would, /health, /api/status and /metrics read back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agent.auth import tokens
from agent.config.models import Retry
from agent.store import jobs
from agent.store import users as stored_users
from tests.support.api import Api

OUTPUT_FOLDER = {"tv": "TV", "movies": "Movies"}


def now() -> datetime:
    return datetime.now(UTC)


def add_job(
    api: Api, rel_path: str, *, library: str = "tv", state: jobs.JobState = jobs.JobState.QUEUED, **failure: Any
) -> jobs.Job:
    """Queue a job as the engine does, then move it to state as the dispatcher would."""
    connection = api.context.state.store.database
    job = jobs.enqueue(
        connection,
        library=library,
        rel_path=rel_path,
        fingerprint=f"fp-{library}-{rel_path}",
        preset_hash="preset-fast",
        output_path=f"{OUTPUT_FOLDER.get(library, library)}/{rel_path}",
        reason="new",
        now=now(),
    )
    assert job is not None
    if state is jobs.JobState.QUEUED:
        return job
    if state is jobs.JobState.CANCELLED:
        return jobs.cancel(connection, job.id, now=now())
    job = jobs.mark_running(connection, job.id, now=now())
    if state is jobs.JobState.RUNNING:
        return job
    if state is jobs.JobState.DONE:
        return jobs.mark_done(connection, job.id, now=now())
    retry = Retry(attempts=1 if state is jobs.JobState.DEAD else 5)
    failed = jobs.mark_failed(
        connection,
        job.id,
        error=failure.get("error", "HandBrakeCLI exited with code 3"),
        stderr_tail=failure.get("stderr_tail", ["x264 [error]: malloc failed"]),
        retry=retry,
        now=now(),
    )
    assert failed.state is state
    return failed


async def get_health(api: Api) -> tuple[int, dict[str, Any]]:
    api.context.health_cache.clear()  # the checks are cached for HEALTH_CACHE_SECONDS
    response = await api.client.get("/health")
    return response.status, dict(await response.json())


async def get_status(api: Api) -> dict[str, Any]:
    response = await api.client.get("/api/status", headers=await api.viewer())
    assert response.status == 200, await response.text()
    return dict(await response.json())


def parse_metrics(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Return sample name -> sorted labels -> value."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


async def scrape(api: Api) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = await api.client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    return parse_metrics(await response.text())


def expired_token(api: Api, *, name: str = "viewer") -> str:
    """Return a token of the stored user `name` that expired five minutes ago."""
    user = stored_users.find(api.context.state.store.database, name)
    assert user is not None
    timeout = api.context.state.config.auth.session_timeout
    issued = tokens.issue_token(
        secret=api.context.secret, user=user, lifetime=timeout, now=datetime.now(UTC) - timeout - timedelta(minutes=5)
    )
    return issued.token
