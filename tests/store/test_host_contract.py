"""What one host's runner relies on when several share a store: its own jobs, its own failures,
and the archive space every host's running encodes will still take.

- Start-up after a crash settles only this host's running jobs (and those from before leases,
  which have no host): another host's encodes keep running.
- A failure is recorded only while the host's token still holds the job: a host that lost the
  job must not overwrite what the new holder does with it.
- Heartbeats carry what each running encode has yet to write, so the gate of every host can
  count all of them against the archive's free space.
"""

from __future__ import annotations

import pytest

from agent.config.models import Retry
from agent.store.jobs import JobState
from agent.store.leases import LeaseLost
from agent.store.protocol import Store
from tests.support.jobs import T0
from tests.support.leases import BLINK, LEASE, added, claimed, expire_now

from .conftest import LEASE_STORES, STORES


@pytest.fixture(params=LEASE_STORES)
def store(request: pytest.FixtureRequest) -> Store:
    name = "direct_postgres" if request.param == "postgres" and "postgres" not in STORES else request.param
    found: Store = request.getfixturevalue(f"{name}_store")
    return found


def test_start_up_requeues_only_this_hosts_running_jobs_and_those_without_a_host(store: Store) -> None:
    mine = added(store, "a.mkv")
    claimed(store, "alpha")
    theirs = added(store, "b.mkv", seconds=1)
    claimed(store, "beta")
    before_leases = added(store, "c.mkv", seconds=2)
    store.mark_running(before_leases.id, now=T0)

    requeued = store.requeue_running(now=T0, host="alpha")

    assert [job.id for job in requeued] == [mine.id, before_leases.id]
    assert all(job.state is JobState.QUEUED and job.attempts == 0 for job in requeued)
    running = store.get_job(theirs.id)
    lease = store.lease_of(theirs.id)
    assert running is not None and running.state is JobState.RUNNING
    assert lease is not None and lease.host == "beta"


@pytest.mark.parametrize("kind", ["counted", "temporary", "permanent"])
def test_a_failure_under_a_lost_token_records_nothing(store: Store, kind: str) -> None:
    job = added(store)
    lost = claimed(store, "alpha", lease=BLINK)
    expire_now(store)
    holder = claimed(store, "beta")
    retry = Retry()

    with pytest.raises(LeaseLost):
        if kind == "counted":
            store.mark_failed(job.id, error="late", stderr_tail=[], retry=retry, now=T0, token=lost.token)
        elif kind == "temporary":
            store.mark_failed_temporarily(job.id, error="late", stderr_tail=[], retry=retry, now=T0, token=lost.token)
        else:
            store.mark_failed_permanently(job.id, error="late", stderr_tail=[], now=T0, token=lost.token)

    still = store.get_job(job.id)
    assert still is not None and still.state is JobState.RUNNING and still.attempts == 0 and still.error is None
    lease = store.lease_of(job.id)
    assert lease is not None and (lease.host, lease.token) == ("beta", holder.token)
    failed = store.mark_failed(job.id, error="real", stderr_tail=[], retry=retry, now=T0, token=holder.token)
    assert failed.state is JobState.FAILED and failed.attempts == 1


def test_the_space_running_encodes_will_still_write_is_counted_for_every_host(store: Store) -> None:
    first = added(store, "a.mkv")
    alpha = claimed(store, "alpha")
    second = added(store, "b.mkv", seconds=1)
    beta = claimed(store, "beta")
    assert store.heartbeat(first.id, alpha.token, progress=10.0, lease=LEASE, remaining=700).held
    assert store.heartbeat(second.id, beta.token, progress=20.0, lease=LEASE, remaining=300).held

    assert store.remaining_bytes(other_than="alpha") == 300  # alpha counts its own from its memory
    assert store.remaining_bytes(other_than=None) == 1000

    store.release_claim(second.id, beta.token, reason="beta stopping")
    assert store.remaining_bytes(other_than="alpha") == 0  # only running encodes write


def test_a_heartbeat_without_progress_keeps_the_time_the_encode_last_wrote(store: Store) -> None:
    # Start-up recovery tells an output the job published from an older one by comparing its
    # mtime with the job's updated_at: heartbeats while the output is verified must not move it.
    job = added(store)
    claim = claimed(store, "alpha")
    before = store.get_job(job.id)

    assert store.heartbeat(job.id, claim.token, progress=None, lease=LEASE).held

    after = store.get_job(job.id)
    assert before is not None and after is not None and after.updated_at == before.updated_at
