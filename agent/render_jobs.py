"""`hb2r jobs` as a table a person reads: one row per job, why it waits or failed, and a count.

File names are shown as `agent.quoting` says (quoted when they hold a newline, an escape
sequence or a bidi override), so a strange name can neither break the table nor the terminal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

from agent.quoting import first_line, shown
from agent.store.jobs import Job, JobState


def jobs_table(
    found: Sequence[Job],
    *,
    now: datetime,
    counts: Mapping[str, int] | None = None,
    unreadable: Mapping[str, str] | None = None,
) -> str:
    """Return the jobs as an aligned table with a count by state below it: of `counts` (every job
    the filters match, when the table is one page of them) if given, else of the jobs shown.
    `unreadable` (fingerprint -> why ffprobe could not read that content) adds the reason to the
    line of each job of such a file: the rules could not decide it, so it is encoded as before."""
    # Which host runs a job shows only where some job has one (a store shared by several hosts).
    hosts = any(job.host for job in found)
    header = ("ID", "STATE", *(("HOST",) if hosts else ()), "ATTEMPTS", "LIBRARY", "PATH", "PROGRESS", "DETAIL")
    rows = [header] + [
        (
            str(job.id),
            str(job.state),
            *((shown(job.host or ""),) if hosts else ()),
            str(job.attempts),
            shown(job.library),
            shown(job.rel_path),
            "" if job.progress is None else f"{job.progress:.1f}%",
            _with_facts_error(_job_detail(job, now=now), (unreadable or {}).get(job.fingerprint)),
        )
        for job in found
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]
    by_state = Counter(str(job.state) for job in found) if counts is None else Counter(counts)
    summary = ", ".join(f"{by_state[state]} {state}" for state in JobState if by_state[state])
    total = sum(by_state.values())
    count = f"{total} job" if total == 1 else f"{total} jobs"
    lines.append(f"{count}: {summary}")
    return "\n".join(lines) + "\n"


def _with_facts_error(detail: str, error: str | None) -> str:
    if error is None:
        return detail
    said = f"media facts unreadable: {first_line(error)}"
    return f"{detail}; {said}" if detail else said


def _job_detail(job: Job, *, now: datetime) -> str:
    """Return when a failed job runs again and why it failed, a dead job's error, or a retried job's last one."""
    error = first_line(job.error)
    if job.state == "failed" and job.not_before is not None:
        when = datetime.fromisoformat(job.not_before)
        due = f"{'due since' if when <= now else 'retry after'} {when:%Y-%m-%d %H:%M:%S} UTC"
        return f"{due}: {error}" if error else due
    if job.state in ("failed", "dead"):
        return error
    return f"last error: {error}" if error and job.state in ("queued", "cancelled") else ""
