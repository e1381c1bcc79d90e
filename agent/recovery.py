"""Start-up after a crash: settle the jobs it interrupted before any job starts.

The dispatcher publishes an encode in one transaction: ledger row, job `done`, then the
atomic move into the archive, then COMMIT. A crash between the move and the COMMIT leaves a
verified output in place, the job `running` and no ledger row for it. Requeueing that job
would encode the file again and replace an output Resilio may already have shared; waiting
for the first pass to adopt it is too late, since the dispatcher ticks first.

So, before anything is requeued, a `running` job whose output is in place and was written
after the job started (its mtime is not older than the job's last update: HandBrakeCLI wrote
it, publish keeps the mtime) is recorded in the ledger and marked done, provided its source
still has the content the job encoded (same fingerprint). An older file at that path is an
earlier output (the source changed since), and a job whose library was taken out of the
config, or whose source changed or vanished, is requeued as before: the pass decides.

Only this host's running jobs are settled (and those started before leases, with no host):
another host sharing the store may be encoding its own right now. A claimed job is settled
through `finish_claimed` with its token, so one another host took meanwhile is left alone.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from agent.config.models import Config
from agent.domain import LedgerEntry
from agent.scan import fingerprint
from agent.store import jobs
from agent.store.jobs import LeaseLost
from agent.store.protocol import Store
from agent.timestamps import stamp


def settle_published(store: Store, config: Config, *, now: datetime) -> list[jobs.Job]:
    """Mark done, with their ledger rows, the running jobs whose output a crash left published; return them."""
    sources = {library.name: library.source for library in config.libraries}
    settled = []
    for job in store.list_jobs(state=jobs.JobState.RUNNING):
        source_folder = sources.get(job.library)
        lease = store.lease_of(job.id)
        if source_folder is None or lease is None or lease.host not in (None, config.host.name):
            continue
        published = _published_entry(
            job, source=source_folder / job.rel_path, output=config.paths.archive / job.output_path
        )
        if published is None:
            continue
        entry, output_size = published
        try:
            with store.transaction():
                store.forget_output(job.output_path)  # an earlier content's row, superseded
                if lease.token is None:
                    store.record_output(entry, encoded_at=stamp(now), output_size=output_size)
                    done = store.mark_done(job.id, now=now)
                else:
                    done = store.finish_claimed(
                        job.id, lease.token, entry, encoded_at=stamp(now), output_size=output_size, now=now
                    )
        except LeaseLost:  # taken by another host meanwhile (nothing written): that host settles it
            continue
        settled.append(done)
    return settled


def _published_entry(job: jobs.Job, *, source: Path, output: Path) -> tuple[LedgerEntry, int] | None:
    """Return the ledger entry and output size of job's output if the job published it, else None."""
    try:
        published = output.lstat()
        source_stat = source.stat()
    except OSError:
        return None
    running_since = datetime.fromisoformat(job.updated_at).timestamp()
    if not output.is_file() or output.is_symlink() or published.st_size == 0 or published.st_mtime < running_since:
        return None
    try:
        if fingerprint(source, size=source_stat.st_size) != job.fingerprint:
            return None
    except OSError:
        return None
    entry = LedgerEntry(
        job.library,
        job.rel_path,
        job.fingerprint,
        source_stat.st_size,
        source_stat.st_mtime_ns,
        job.preset_hash,
        job.output_path,
    )
    return entry, published.st_size
