"""The bodies of `hb2r jobs` (and its `--front`) and `hb2r retry`, apart from the parser in `agent.cli`.

Kept out of `agent/cli.py` so that module stays argument parsing and dispatch. Both read
the store the config names directly, so they work while the agent runs (SQLite WAL, or
PostgreSQL); `jobs` never writes (a read-only transaction on PostgreSQL) nor creates a
database, and `retry` does not make one just to say there is nothing to retry.

`jobs` reads one page, never the whole table (a queue may hold a million jobs): the newest
`--limit` jobs the filters match (below `--before` when given), printed oldest first as a log's
tail is, the count of every matching job by state (from the store's tallies, not the page), and
the `--before` that shows the next, older page.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from agent.cli_output import EXIT_ERROR, EXIT_OK, fail, warn
from agent.quoting import first_line, shown
from agent.render_jobs import jobs_table
from agent.store import StoreError, jobs
from agent.store.choose import has_state, no_state_yet, read_state, store_failure, store_for
from agent.store.db import StateError, database_path
from agent.wording import counted

if TYPE_CHECKING:
    from agent.config.models import Config
    from agent.store.protocol import Store

DEFAULT_PAGE = 100  # jobs in one page of `hb2r jobs`
MAX_PAGE = 10_000


def list_jobs(arguments: argparse.Namespace, config: Config) -> int:
    """Given `hb2r jobs` arguments and the config, print a page of jobs; return the exit code."""
    try:
        state = read_state(config, lambda store: _read_page(store, arguments), warn=warn)
    except StateError as error:
        return fail(error)
    page = state if state is not None else Page([], (), {}, more=False, unreadable={})
    found, before = page.jobs, arguments.before
    next_before = found[0].id if page.more else None
    if arguments.json:
        # facts_error: why ffprobe could not read the job's file (agent.probing), else None
        listed = [{**job._asdict(), "facts_error": page.unreadable.get(job.fingerprint)} for job in found]
        print(json.dumps({"held_back": list(page.held_back), "jobs": listed, "next_before": next_before}, indent=2))
        return EXIT_OK
    if page.held_back:
        print(f"No job may start now: {'; '.join(page.held_back)}.")
    if state is None:
        print(f"No jobs: {no_state_yet(config)}.")
    elif not found:
        only = f" {arguments.state}" if arguments.state else ""
        where = f" in library {arguments.library}" if arguments.library else ""
        older = f" older than job {before}" if before is not None else ""
        print(f"No{only} jobs{where}{older}.")
    else:
        sys.stdout.write(jobs_table(found, now=datetime.now(UTC), counts=page.counts, unreadable=page.unreadable))
        shown = f"the newest {len(found)}" if before is None else f"{len(found)} older than job {before}"
        if next_before is not None:
            print(f"Shown: {shown}. Older ones: {_next_page(arguments, next_before)}")
        elif before is not None:
            print(f"Shown: {shown}.")
    return EXIT_OK


class Page(NamedTuple):
    jobs: list[jobs.Job]  # oldest first
    held_back: tuple[str, ...]
    counts: dict[str, int]  # of every job the filters match, by state, not only the page's
    more: bool  # older jobs match too
    unreadable: dict[str, str]  # fingerprint -> why ffprobe could not read that content (the page's only)


def _read_page(store: Store, arguments: argparse.Namespace) -> Page:
    """Read one page (never the whole table: a queue may hold a million jobs) and the counts."""
    newest_first = store.page(
        state=arguments.state, library=arguments.library, before_id=arguments.before, limit=arguments.limit + 1
    )
    counts: dict[str, int] = {}
    for library, by_state in store.counts_by_library().items():
        if arguments.library is None or library == arguments.library:
            for state, number in by_state.items():
                if arguments.state is None or state == arguments.state:
                    counts[state] = counts.get(state, 0) + number
    page = newest_first[: arguments.limit]
    known = store.facts_for([job.fingerprint for job in page])
    unreadable = {fingerprint: kept.error for fingerprint, kept in known.items() if kept.error is not None}
    return Page(
        page[::-1], store.gate_reasons()[0], counts, more=len(newest_first) > arguments.limit, unreadable=unreadable
    )


def _next_page(arguments: argparse.Namespace, before: int) -> str:
    """Return the command that shows the page after this one: the same filters, below `before`."""
    options = [("--state", arguments.state), ("--library", arguments.library)]
    options += [("--limit", arguments.limit if arguments.limit != DEFAULT_PAGE else None), ("--before", before)]
    return shlex.join(
        ["hb2r", "jobs", *(part for name, value in options if value is not None for part in (name, str(value)))]
    )


def front_job(job_id: int, config: Config) -> int:
    """Given a job id and the config, move that waiting job to the front of the queue; return the exit code."""
    try:
        if not has_state(config):  # no queue yet; do not make a database to say so
            return fail(f"there is no job {job_id} ({no_state_yet(config)}); nothing was changed")
        store = store_for(config)
        try:
            job = store.move_to_front(job_id, now=datetime.now(UTC))
        finally:
            store.close()
    except (jobs.JobError, StateError, StoreError) as error:
        return _refused(config, error, nothing_done="nothing was changed")
    print(f"Moved job {job.id} ({shown(job.library)}: {shown(job.rel_path)}) to the front: it starts next")
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
    except (jobs.JobError, StateError, StoreError) as error:
        return _refused(config, error, nothing_done="nothing was requeued")
    for job in requeued:
        was = before[job.id].state if job.id in before else jobs.JobState.DEAD
        reason = f": {first_line(job.error)}" if first_line(job.error) else ""  # a requeued job keeps its last error
        print(f"Requeued job {job.id} ({shown(job.library)}: {shown(job.rel_path)}), was {was}{reason}")
    if job_id is None and not requeued and not left:
        print("No dead jobs to retry.")
    if left:
        print(f"Left {counted(left, 'dead job')} as they are: another job for the same file supersedes them.")
    return EXIT_OK


def _refused(config: Config, error: Exception, *, nothing_done: str) -> int:
    """Say why a change to the queue was refused or failed (what was done: `nothing_done`); return EXIT_ERROR."""
    if isinstance(error, jobs.JobError):
        message = f"{error}; {nothing_done}"
    elif isinstance(error, StateError):
        message = str(error)
    else:
        message = store_failure(config, error)
    return fail(message)


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
