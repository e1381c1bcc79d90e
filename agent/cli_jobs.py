"""The bodies of `hb2r jobs` and `hb2r retry`, apart from the parser in `agent.cli`.

Kept out of `agent/cli.py` so that module stays argument parsing and dispatch. Both read
the store the config names directly, so they work while the agent runs (SQLite WAL, or
PostgreSQL); `jobs` never writes (a read-only transaction on PostgreSQL) nor creates a
database, and `retry` does not make one just to say there is nothing to retry.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from agent.quoting import first_line, shown
from agent.render_jobs import jobs_table
from agent.store import StoreError, jobs
from agent.store.choose import has_state, no_state_yet, read_state, store_failure, store_for
from agent.store.db import StateError, database_path

if TYPE_CHECKING:
    from agent.config.models import Config

EXIT_OK = 0
EXIT_ERROR = 1


def list_jobs(arguments: argparse.Namespace, config: Config) -> int:
    """Given `hb2r jobs` arguments and the config, print the jobs; return the exit code."""
    try:
        state = read_state(
            config,
            lambda store: (store.list_jobs(state=arguments.state, library=arguments.library), store.gate_reasons()[0]),
            warn=_warn,
        )
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    found, held_back = state if state is not None else ([], ())
    if arguments.json:
        print(json.dumps({"held_back": list(held_back), "jobs": [job._asdict() for job in found]}, indent=2))
        return EXIT_OK
    if held_back:
        print(f"No job may start now: {'; '.join(held_back)}.")
    if state is None:
        print(f"No jobs: {no_state_yet(config)}.")
    elif not found:
        only = f" {arguments.state}" if arguments.state else ""
        where = f" in library {arguments.library}" if arguments.library else ""
        print(f"No{only} jobs{where}.")
    else:
        sys.stdout.write(jobs_table(found, now=datetime.now(UTC)))
    return EXIT_OK


def retry_jobs(job_id: int | None, config: Config) -> int:
    """Given a job id (None: every dead job) and the config, queue the job(s) again; return the exit code."""
    now = datetime.now(UTC)
    try:
        if not has_state(config):  # nothing to retry; do not make a database to say so
            if job_id is None:
                print("No dead jobs to retry.")
                return EXIT_OK
            if config.store.is_postgres:
                print(f"error: there is no job {job_id} ({no_state_yet(config)})", file=sys.stderr)
            else:
                where = database_path(config.paths.state_dir)
                print(f"error: there is no job {job_id} (no state database at {where} yet)", file=sys.stderr)
            return EXIT_ERROR
        store = store_for(config)
        try:
            with store.transaction():
                if job_id is None:
                    # What was dead is what retry_dead requeues, read from its own statement: on
                    # PostgreSQL (READ COMMITTED) a list read first could miss a job that died since.
                    before = {}
                    requeued = store.retry_dead(now=now)
                    left = store.counts()[jobs.JobState.DEAD]
                else:
                    found = store.get_job(job_id)
                    before = {} if found is None else {job_id: found}
                    requeued, left = [store.retry(job_id, now=now)], 0
        finally:
            store.close()
    except jobs.JobError as error:
        print(f"error: {error}; nothing was requeued", file=sys.stderr)
        return EXIT_ERROR
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except StoreError as error:
        print(f"error: {store_failure(config, error)}", file=sys.stderr)
        return EXIT_ERROR
    for job in requeued:
        was = before[job.id].state if job.id in before else jobs.JobState.DEAD
        reason = f": {first_line(job.error)}" if first_line(job.error) else ""  # a requeued job keeps its last error
        print(f"Requeued job {job.id} ({shown(job.library)}: {shown(job.rel_path)}), was {was}{reason}")
    if job_id is None and not requeued and not left:
        print("No dead jobs to retry.")
    if left:
        print(f"Left {_count(left, 'dead job')} as they are: another job for the same file supersedes them.")
    return EXIT_OK


def retry_target(arguments: argparse.Namespace) -> int | None:
    """Given `hb2r retry` arguments, return the JOB_ID to retry, or None for --dead.

    Exit with a usage error if neither or both are given.
    """
    job_id, config = arguments.job_id, arguments.config
    if arguments.dead and job_id is not None:
        if config is not None:
            arguments.usage_error("give either JOB_ID or --dead, not both")
        arguments.config, job_id = Path(job_id), None  # `retry --dead CONFIG`
    if job_id is None:
        if not arguments.dead:
            arguments.usage_error("give the JOB_ID of a job to retry (see hb2r jobs) or --dead")
        return None
    try:
        return int(job_id)
    except ValueError:
        arguments.usage_error(f"JOB_ID must be a job's number (see hb2r jobs), got {job_id!r}; or --dead for all dead")
        raise  # not reached: usage_error exits


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _count(number: int, one: str) -> str:
    return f"{number} {one if number == 1 else one + 's'}"
