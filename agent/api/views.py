"""The JSON shapes of jobs, running encodes and host samples, shared by the routes and the WebSocket."""

from __future__ import annotations

import os
import shutil
from typing import Any

from agent import gate
from agent.api.context import ApiContext
from agent.dispatcher import Running
from agent.resources import cpu_count
from agent.store.jobs import Job

GIB = 1024**3


def job_view(job: Job, *, running: Running | None = None, detail: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": job.id,
        "library": job.library,
        "path": job.rel_path,
        "output": job.output_path,
        "state": str(job.state),
        "reason": job.reason,
        "attempts": job.attempts,
        "progress": running.progress if running is not None else job.progress,
        "error": job.error,
        "retry_at": job.not_before,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "host": job.host,  # the host running it under a lease; None when none does
    }
    if running is not None:
        view.update(running_view(running))
    if detail:
        view["stderr_tail"] = job.stderr_tail.splitlines() if job.stderr_tail else []
        view["fingerprint"] = job.fingerprint
    return view


def running_view(entry: Running) -> dict[str, Any]:
    return {
        "progress": round(entry.progress, 2),
        "fps": entry.fps,
        "eta_seconds": entry.eta_seconds,
        "suspended": entry.suspended,
    }


def encodes_view(context: ApiContext) -> list[dict[str, Any]]:
    return [
        {"id": entry.job.id, "library": entry.job.library, "path": entry.job.rel_path, **running_view(entry)}
        for entry in sorted(context.dispatcher.running.values(), key=lambda entry: entry.job.id)
    ]


def fresh_sample(context: ApiContext, *, max_age: float = 5.0) -> gate.Sample:
    """Return the dispatcher's last host sample, taking a new one if it is older than max_age seconds."""
    dispatcher = context.dispatcher
    if dispatcher.last_sample is None or dispatcher.sample_age() > max_age:
        return dispatcher.take_sample()
    return dispatcher.last_sample


def gate_view(context: ApiContext) -> dict[str, Any]:
    reasons = context.dispatcher.blocked_reasons
    return {
        "admitting": not reasons,
        "reasons": list(reasons),
        "short_of_resources": bool(reasons) and context.dispatcher.short_of_resources,
    }


def system_view(context: ApiContext) -> dict[str, Any]:
    sample = fresh_sample(context)
    limits = context.state.config.limits
    archive = context.state.config.paths.archive
    try:
        usage = shutil.disk_usage(archive)
        disk: dict[str, Any] = {"path": str(archive), "total_bytes": usage.total, "free_bytes": usage.free}
    except OSError as error:
        disk = {"path": str(archive), "total_bytes": None, "free_bytes": None, "error": error.strerror}
    cores = cpu_count()
    return {
        "cpu": {"percent": sample.cpu_percent, "limit_percent": limits.cpu_percent, "cores": cores},
        "memory": {
            "percent": sample.memory_percent,
            "limit_percent": limits.memory_percent,
            "available_bytes": sample.available_memory,
            "min_free_bytes": limits.min_free_memory,
        },
        "load": list(os.getloadavg()),
        "archive": {**disk, "min_free_bytes": limits.min_free_disk},
        "max_jobs": gate.max_jobs(limits, cpu_count=cores),
        "running": encodes_view(context),
        "gate": gate_view(context),
    }
