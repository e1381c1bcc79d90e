"""GET /health: is the agent well? No token, and cheap enough for a probe every second.

No disk walk and no blocking CPU measurement: the host figures are the dispatcher's last
sample (at most a few seconds old), and the database and archive checks are kept for
HEALTH_CACHE_SECONDS. `unhealthy` (HTTP 503): the database cannot be read, or the archive
is missing or read-only. `degraded` (HTTP 200): a library is paused or in error (its output
folder on another mount included), the archive has a problem that does not stop encoding
(`.sync/IgnoreList` not writable, outputs Resilio could not read), the gate
holds jobs back for want of CPU, memory or disk, the last config reload was refused, or an
encode stalled (the watchdog killed it; shown until that job next ends otherwise), or a host
sharing the store has not been seen for 3 leases (named, with when it was last seen: dead,
frozen or cut off; `agent.presence`). `leader` names the host that plans now and its epoch
(null while no host holds the planner's lease).
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agent.api.context import ApiContext, context_of
from agent.api.hosts import leader_view
from agent.api.views import GIB, fresh_sample
from agent.presence import late_after, late_hosts
from agent.store import StoreError, jobs
from agent.timestamps import stamp

HEALTH_CACHE_SECONDS = 1.0


async def health(request: web.Request) -> web.Response:
    report = health_report(context_of(request))
    return web.json_response(report, status=503 if report["status"] == "unhealthy" else 200)


def health_report(context: ApiContext) -> dict[str, Any]:
    sample = fresh_sample(context)
    checks = _checks(context)
    problems: list[str] = list(checks["problems"])
    status = "unhealthy" if problems else "healthy"
    state = context.state
    if status == "healthy":
        # Only configured libraries count: a hold kept in SQLite for a library since taken out
        # of the config holds nothing back.
        configured = {library.name for library in state.config.libraries}
        broken = sorted((name, reason) for name, reason in state.broken_libraries.items() if name in configured)
        paused = sorted((name, reason) for name, reason in state.paused_libraries.items() if name in configured)
        held = sorted((name, hold.reason) for name, hold in state.held_libraries.items() if name in configured)
        degraded = [f"library {name}: {reason}" for name, reason in broken]
        degraded += [
            f"library {name}: {reason}"
            for name, reason in sorted(state.unpublishable_libraries.items())
            if name in configured and name not in state.broken_libraries
        ]
        degraded += [f"archive: {reason}" for _, reason in sorted(state.archive_problems.items())]
        degraded += [f"library {name} paused: {reason}" for name, reason in [*paused, *held]]
        degraded += [  # this host's own problems: other hosts may still encode these libraries
            f"library {name} not claimed on this host: {reason}"
            for name, reason in sorted(context.dispatcher.unreadable_here.items())
            if name in configured
        ]
        if context.dispatcher.encoder_problem is not None:
            degraded.append(f"no job claimed on this host: {context.dispatcher.encoder_problem}")
        if context.dispatcher.short_of_resources and context.dispatcher.blocked_reasons:
            degraded += [f"jobs held back: {reason}" for reason in context.dispatcher.blocked_reasons]
        if state.reload_error:
            degraded.append(f"config reload refused: {state.reload_error}")
        if state.pass_problem:
            degraded.append(state.pass_problem)
        degraded += list(context.dispatcher.stalls.values())
        degraded += checks["late_hosts"]
        if degraded:
            status, problems = "degraded", degraded
    return {
        "status": status,
        "timestamp": stamp(datetime.now(UTC)),
        "version": context.version,
        "system": {
            "cpu_percent": round(sample.cpu_percent, 1),
            "memory_percent": round(sample.memory_percent, 1),
            "disk_free_gb": round(sample.archive_free / GIB, 1),
        },
        "database": checks["database"],
        "leader": checks["leader"],
        "queue": checks["queue"],
        "problems": problems,
        "config_generation": state.config_generation,
        "uptime_seconds": int((datetime.now(UTC) - context.started_at).total_seconds()),
    }


def _checks(context: ApiContext) -> dict[str, Any]:
    cache = context.health_cache
    if cache and time.monotonic() - cache["at"] < HEALTH_CACHE_SECONDS:
        return cache
    problems = []
    queue = {"queue_size": 0, "running_jobs": 0, "completed_jobs": 0}
    leader: dict[str, Any] | None = None
    late: list[str] = []
    try:
        counts = context.state.store.counts()
        queue = {
            "queue_size": counts[jobs.JobState.QUEUED] + counts[jobs.JobState.FAILED],
            "running_jobs": counts[jobs.JobState.RUNNING],
            "completed_jobs": counts[jobs.JobState.DONE],
        }
        database = "healthy"
        leader, late = _hosts(context)
    except StoreError as error:
        database = "unreachable"
        problems.append(f"state database: {error}")
    archive = context.state.config.paths.archive
    problem = _archive_problem(archive)
    if problem:
        problems.append(problem)
    cache.clear()
    cache.update(at=time.monotonic(), problems=problems, database=database, queue=queue, leader=leader, late_hosts=late)
    return cache


def _hosts(context: ApiContext) -> tuple[dict[str, Any] | None, list[str]]:
    """Return the leader (host, epoch) and a problem for each host not seen for 3 leases."""
    store, lease = context.state.store, context.state.config.store.lease
    late = [
        f"host {host.name} not seen for 3 leases ({int(late_after(lease).total_seconds())} s): "
        f"last seen {host.last_seen}"
        for host in late_hosts(store.list_hosts(), lease=lease)
    ]
    return leader_view(store.leadership()), late


def _archive_problem(archive: os.PathLike[str]) -> str | None:
    try:
        if not os.path.isdir(archive):
            return f"archive {os.fspath(archive)} is missing (is the disk mounted?)"
        read_only = bool(os.statvfs(archive).f_flag & os.ST_RDONLY)
    except OSError as error:
        return f"archive {os.fspath(archive)}: {error.strerror}"
    if read_only or not os.access(archive, os.W_OK):
        return f"archive {os.fspath(archive)} is read-only"
    return None
