"""Jobs: the list (newest first, by cursor), one job, and an admin's retry, cancel and move to the front."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.api import params
from agent.api.context import ApiContext, context_of, session_of
from agent.api.errors import ApiError, not_found
from agent.api.security import requires
from agent.api.views import job_view
from agent.store import jobs

MAX_PAGE = 500


class JobsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    state: jobs.JobState | None = None
    library: Annotated[str, Field(pattern=params.NAME_PATTERN)] | None = None
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = None

    @field_validator("cursor")
    @classmethod
    def _cursor_is_ours(cls, value: str | None) -> str | None:
        if value is not None:
            params.decode_cursor(value)
        return value


@requires("user")
async def list_jobs(request: web.Request) -> web.Response:
    context = context_of(request)
    asked = params.query(request, JobsQuery)
    before = params.decode_cursor(asked.cursor) if asked.cursor else None
    found = context.state.store.page(state=asked.state, library=asked.library, before_id=before, limit=asked.limit + 1)
    more = len(found) > asked.limit
    found = found[: asked.limit]
    running = context.dispatcher.running
    return web.json_response(
        {
            "jobs": [job_view(job, running=running.get(job.id)) for job in found],
            "next_cursor": params.encode_cursor(found[-1].id) if more else None,
        }
    )


@requires("user")
async def get_job(request: web.Request) -> web.Response:
    context = context_of(request)
    job_id = params.job_id(request)
    job = context.state.store.get_job(job_id)
    if job is None:
        raise not_found(f"there is no job {job_id}")
    return web.json_response(job_view(job, running=context.dispatcher.running.get(job_id), detail=True))


@requires("admin")
async def retry_job(request: web.Request) -> web.Response:
    return await _change(
        request, "job retried", lambda context, job_id: context.state.store.retry(job_id, now=datetime.now(UTC))
    )


@requires("admin")
async def cancel_job(request: web.Request) -> web.Response:
    return await _change(request, "job cancelled", lambda context, job_id: context.dispatcher.cancel_job(job_id))


@requires("admin")
async def front_job(request: web.Request) -> web.Response:
    """Move a waiting job before every other (agent.store.order): it starts when a slot is next free."""
    return await _change(
        request,
        "job moved to the front",
        lambda context, job_id: context.state.store.move_to_front(job_id, now=datetime.now(UTC)),
    )


async def _change(
    request: web.Request, event: str, act: Callable[[ApiContext, int], jobs.Job | Awaitable[jobs.Job]]
) -> web.Response:
    """Do an admin's change to the job the path names; log it as event and answer with the job.
    A job that is not there is a 404, a change its state does not allow a 409. The dispatcher is
    woken: the change may let a job start (one retried or moved up, or the slot a cancel freed)."""
    context = context_of(request)
    job_id = params.job_id(request)
    try:
        done = act(context, job_id)
        job = await done if inspect.isawaitable(done) else done
    except jobs.JobError as error:
        raise _job_error(error) from None
    _log(request, event, job)
    context.dispatcher.wake()
    return web.json_response(job_view(job, detail=True))


def _job_error(error: jobs.JobError) -> ApiError:
    return ApiError(404 if isinstance(error, jobs.JobNotFound) else 409, str(error))


def _log(request: web.Request, event: str, job: jobs.Job) -> None:
    session = session_of(request)
    context_of(request).log.info(
        event, job=job.id, library=job.library, path=job.rel_path, by=session.user if session else None
    )
