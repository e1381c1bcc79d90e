"""Two hosts claiming from one queue never take the same job: the issue's test, with real processes.

Each host is its own process with its own connection (`tests/support/claimer.py`); both start
claiming at once from one queue of 2,000 jobs and log every claim with its job and token.
Each publishes what it claimed at once (fenced by its token). Compared afterwards: no job
claimed twice, no token handed out twice, every job claimed, done, and in the ledger once.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agent.store.database_store import DatabaseStore
from agent.store.jobs import JobState
from tests.support.claimer import fill, open_any, run_hosts

JOBS = 2000
LIBRARIES = ["tv", "movies"]
PAUSE = 0.002  # each host's "encode" between claims: see claimer.py on why not 0


@pytest.fixture(params=["sqlite", "postgres"])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Return the location of a store holding JOBS queued jobs (a SQLite state folder or a PostgreSQL URL)."""
    location = str(tmp_path / "state") if request.param == "sqlite" else str(request.getfixturevalue("postgres_url"))
    store: DatabaseStore = open_any(location)
    try:
        fill(store, count=JOBS, libraries=LIBRARIES)
    finally:
        store.close()
    return location


def test_two_processes_claiming_one_queue_never_take_the_same_job(queue: str) -> None:
    claims = run_hosts(queue, hosts=["alpha", "beta"], libraries=LIBRARIES, pause=PAUSE).claims

    logged = [(host, claim.job_id, claim.token) for host, found in claims.items() for claim in found]
    job_ids = [job_id for _, job_id, _ in logged]
    tokens = [token for _, _, token in logged]
    twice = sorted(job_id for job_id, count in Counter(job_ids).items() if count > 1)
    assert twice == [], f"{len(twice)} jobs claimed twice, e.g. {twice[:5]}"
    assert len(job_ids) == JOBS
    assert all(claim.published for found in claims.values() for claim in found)
    assert len(tokens) == len(set(tokens))
    for host, found in claims.items():
        assert found, f"{host} claimed nothing: the test did not run two claimers at once"
        assert [claim.token for claim in found] == sorted(claim.token for claim in found)
    store = open_any(queue)
    try:
        assert store.counts()[JobState.DONE] == JOBS
        assert len(store.load_ledger().entries) == JOBS
        held = {job_id: (host, token) for host, job_id, token in logged}
        for job in store.list_jobs(state=JobState.DONE)[:: JOBS // 50]:
            lease = store.lease_of(job.id)
            assert lease is not None and (lease.host, lease.token) == held[job.id]
    finally:
        store.close()
