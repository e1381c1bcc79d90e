"""Jobs queued, claimed and expired the way the lease contract tests (tests/store/test_*_contract.py)
set them up, on any store."""

from __future__ import annotations

from datetime import timedelta

from agent.domain import LedgerEntry
from agent.store.jobs import Job
from agent.store.leases import Claim
from agent.store.protocol import Store
from tests.support.jobs import new_job
from tests.support.waiting import wait_for

LEASE = timedelta(seconds=60)


BLINK = timedelta(milliseconds=5)  # a lease that runs out while the test looks


def added(store: Store, rel_path: str = "Show/E01.mkv", *, library: str = "tv", seconds: float = 0) -> Job:
    job = store.enqueue(**new_job(rel_path, library=library, seconds=seconds))
    assert job is not None
    return job


def claimed(
    store: Store, host: str = "alpha", *, libraries: tuple[str, ...] = ("tv",), lease: timedelta = LEASE
) -> Claim:
    claim = store.claim(host, libraries=libraries, lease=lease, library_order=list(libraries))
    assert claim is not None
    return claim


def entry_for(job: Job) -> LedgerEntry:
    return LedgerEntry(
        library=job.library,
        rel_path=job.rel_path,
        fingerprint=job.fingerprint,
        size=100,
        mtime_ns=1,
        preset_hash=job.preset_hash,
        output_path=job.output_path,
    )


def expire_now(store: Store, *, host_loss_cap: int = 3) -> list[Job]:
    return wait_for(
        lambda: store.expire_leases(host_loss_cap=host_loss_cap), what="an expired lease", deadline=5, interval=0.01
    )
