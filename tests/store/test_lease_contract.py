"""Leases with fencing, as every store must keep them: what several hosts sharing one queue rely on.

A host claims a job (it gets a lease that the database's clock times and a fencing token that
no claim ever had before), renews it by heartbeats, and publishes only while its token is still
the job's. A host that stops renewing loses the job to the queue, counted apart from the job's
own attempts. Lease expiry is real time on the database's clock: the tests that need a lease to
run out take a few milliseconds' lease and poll `expire_leases` with a deadline.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from agent.store.jobs import CancelledBy, JobState
from agent.store.leases import LeaseLost
from agent.store.order import QueueOrder
from agent.store.postgres_store import open_postgres_store
from agent.store.protocol import Store
from tests.support.jobs import T0
from tests.support.leases import BLINK, LEASE, added, claimed, entry_for, expire_now
from tests.support.waiting import within

from .conftest import LEASE_STORES, STORES


@pytest.fixture(params=LEASE_STORES)
def store(request: pytest.FixtureRequest) -> Store:
    name = "direct_postgres" if request.param == "postgres" and "postgres" not in STORES else request.param
    found: Store = request.getfixturevalue(f"{name}_store")
    return found


# --- claiming


def test_a_claim_runs_the_job_for_the_host_with_a_new_token_and_an_expiry_on_the_database_clock(
    store: Store,
) -> None:
    job = added(store)
    before = datetime.now(UTC)

    claim = claimed(store, "alpha")

    after = datetime.now(UTC)
    assert claim.job.id == job.id and claim.job.state is JobState.RUNNING
    assert claim.host == "alpha" and claim.token > 0
    expires = datetime.fromisoformat(claim.expires_at)
    # The test cluster runs on this machine: the database's clock is this clock (1 s of slack).
    assert before + LEASE - timedelta(seconds=1) <= expires <= after + LEASE + timedelta(seconds=1)
    lease = store.lease_of(job.id)
    assert lease is not None
    assert (lease.host, lease.token, lease.expires_at, lease.host_losses) == ("alpha", claim.token, claim.expires_at, 0)
    assert store.claim("beta", libraries=["tv"], lease=LEASE, library_order=["tv"]) is None  # nothing else queued


def test_every_claim_gets_a_higher_token_than_any_before(store: Store) -> None:
    for number in range(3):
        added(store, f"Show/E0{number}.mkv", seconds=number)
    first = claimed(store, "alpha")
    second = claimed(store, "beta")
    store.release_claim(first.job.id, first.token, reason="mount missing")
    again = claimed(store, "gamma")
    third = claimed(store, "alpha")

    assert again.job.id == first.job.id
    assert first.token < second.token < again.token < third.token


def test_a_claim_takes_only_from_the_libraries_the_host_can_read(store: Store) -> None:
    added(store, "a.mkv", library="tv", seconds=0)
    movie = added(store, "b.mkv", library="movies", seconds=5)

    claim = claimed(store, libraries=("movies",))

    assert claim.job.id == movie.id
    assert store.claim("alpha", libraries=["movies"], lease=LEASE, library_order=["movies"]) is None
    assert store.claim("alpha", libraries=[], lease=LEASE, library_order=["tv"]) is None
    assert store.counts()[JobState.QUEUED] == 1


def test_a_claim_takes_what_next_runnable_would_start(store: Store) -> None:
    added(store, "a.mkv", library="other", seconds=0)
    added(store, "b.mkv", library="zzz", seconds=5)
    listed = added(store, "c.mkv", library="tv", seconds=10)
    libraries = ["other", "tv", "zzz"]

    order = [
        claim.job.rel_path
        for claim in iter(lambda: store.claim("alpha", libraries=libraries, lease=LEASE, library_order=["tv"]), None)
    ]

    assert order == [listed.rel_path, "a.mkv", "b.mkv"]


def test_a_claim_takes_the_job_moved_to_the_front_then_follows_the_order(store: Store) -> None:
    first = added(store, "a.mkv", library="tv", seconds=0)
    added(store, "b.mkv", library="tv", seconds=1)
    fronted = added(store, "c.mkv", library="movies", seconds=2)
    elsewhere = added(store, "d.mkv", library="other", seconds=3)
    store.move_to_front(fronted.id, now=T0)
    store.move_to_front(elsewhere.id, now=T0)  # moved last, but in a library this host does not take

    def take() -> str | None:
        claim = store.claim(
            "alpha",
            libraries=["tv", "movies"],
            lease=LEASE,
            library_order=["tv", "movies"],
            order=QueueOrder(within={"tv": "newest"}),
        )
        return None if claim is None else claim.job.rel_path

    assert [take(), take(), take(), take()] == ["c.mkv", "b.mkv", first.rel_path, None]


def test_a_claim_never_starts_a_second_encode_of_a_file(store: Store) -> None:
    added(store)
    running = claimed(store, "alpha").job
    newer = store.enqueue(
        library="tv",
        rel_path=running.rel_path,
        fingerprint="200:rewritten",
        preset_hash="p1",
        output_path=running.output_path,
        reason="changed",
        now=T0 + timedelta(seconds=1),
    )
    assert newer is not None
    other = added(store, "Show/E02.mkv", seconds=2)

    assert claimed(store, "beta").job.id == other.id
    assert store.claim("beta", libraries=["tv"], lease=LEASE, library_order=["tv"]) is None
    assert store.get_job(newer.id) == newer


# --- heartbeats


def test_a_heartbeat_renews_the_lease_and_records_progress(store: Store) -> None:
    job = added(store)
    claim = claimed(store, lease=timedelta(seconds=10))

    beat = store.heartbeat(job.id, claim.token, progress=42.5, lease=timedelta(seconds=600))

    assert beat.held and not beat.cancelled
    assert beat.expires_at is not None and beat.expires_at > claim.expires_at
    running = store.get_job(job.id)
    assert running is not None and running.progress == 42.5 and running.state is JobState.RUNNING


def test_a_stale_token_renews_nothing_and_publishes_nothing(store: Store) -> None:
    job = added(store)
    stale = claimed(store, "alpha", lease=BLINK)
    expire_now(store)
    current = claimed(store, "beta")

    beat = store.heartbeat(job.id, stale.token, progress=99.0, lease=LEASE)
    with pytest.raises(LeaseLost, match=rf"job {job.id}.*token {stale.token}"):
        store.finish_claimed(job.id, stale.token, entry_for(job), encoded_at="2024-05-01T13:00:00+00:00", now=T0)

    assert not beat.held and not beat.cancelled and beat.expires_at is None
    assert store.load_ledger().entries == ()
    kept = store.get_job(job.id)
    assert kept is not None and kept.state is JobState.RUNNING and kept.progress == 0
    lease = store.lease_of(job.id)
    assert lease is not None and (lease.host, lease.token, lease.expires_at) == (
        "beta",
        current.token,
        current.expires_at,
    )


def test_the_current_token_publishes_the_ledger_row_with_the_job_done(store: Store) -> None:
    job = added(store)
    claim = claimed(store)

    done = store.finish_claimed(
        job.id, claim.token, entry_for(job), encoded_at="2024-05-01T13:00:00+00:00", output_size=50, now=T0
    )

    assert done.state is JobState.DONE and done.progress == 100
    assert store.load_ledger().entries == (entry_for(job),)
    assert store.output_size(library="tv", rel_path=job.rel_path) == 50
    assert not store.heartbeat(job.id, claim.token, progress=None, lease=LEASE).held


def test_a_heartbeat_tells_the_host_the_job_was_cancelled_elsewhere(store: Store) -> None:
    job = added(store)
    claim = claimed(store)
    store.cancel(job.id, now=T0, by=CancelledBy.OPERATOR)

    beat = store.heartbeat(job.id, claim.token, progress=10.0, lease=LEASE)

    assert not beat.held and beat.cancelled
    with pytest.raises(LeaseLost):
        store.finish_claimed(job.id, claim.token, entry_for(job), encoded_at="2024-05-01T13:00:00+00:00", now=T0)
    assert store.load_ledger().entries == ()


# --- expiry and release


def test_a_lease_that_runs_out_puts_the_job_back_counting_a_host_loss_not_an_attempt(store: Store) -> None:
    job = added(store)
    claimed(store, "alpha", lease=BLINK)

    (expired,) = expire_now(store)

    assert expired.id == job.id and expired.state is JobState.QUEUED and expired.attempts == 0
    lease = store.lease_of(job.id)
    assert lease is not None and (lease.host, lease.expires_at, lease.host_losses) == (None, None, 1)
    assert claimed(store, "beta").job.id == job.id


def test_a_job_lost_by_more_hosts_than_the_cap_is_dead_naming_them(store: Store) -> None:
    job = added(store)
    for host in ("alpha", "beta"):
        claimed(store, host, lease=BLINK)
        assert [found.state for found in expire_now(store, host_loss_cap=2)] == [JobState.QUEUED]
    claimed(store, "gamma", lease=BLINK)

    (lost,) = expire_now(store, host_loss_cap=2)

    assert lost.id == job.id and lost.state is JobState.DEAD and lost.attempts == 0
    assert lost.error is not None and "alpha, beta, gamma" in lost.error and "3" in lost.error
    lease = store.lease_of(job.id)
    assert lease is not None and lease.host_losses == 3
    assert store.retry(job.id, now=T0).state is JobState.QUEUED
    again = store.lease_of(job.id)
    assert again is not None and again.host_losses == 0  # an operator's retry starts the count afresh


def test_a_live_lease_and_a_job_started_without_one_do_not_expire(store: Store) -> None:
    leased = added(store, "a.mkv")
    claimed(store, lease=LEASE)
    local = added(store, "b.mkv", seconds=1)
    store.mark_running(local.id, now=T0)  # one host on its own: no lease

    assert store.expire_leases(host_loss_cap=0) == []
    assert {job.id for job in store.list_jobs(state=JobState.RUNNING)} == {leased.id, local.id}


def test_a_released_job_goes_back_to_the_queue_without_spending_an_attempt(store: Store) -> None:
    job = added(store)
    claim = claimed(store, "alpha")

    released = store.release_claim(job.id, claim.token, reason="alpha cannot read /mnt/tv")

    assert released.state is JobState.QUEUED and released.attempts == 0
    assert released.error == "alpha cannot read /mnt/tv"
    lease = store.lease_of(job.id)
    assert lease is not None and (lease.host, lease.expires_at, lease.host_losses) == (None, None, 0)
    assert not store.heartbeat(job.id, claim.token, progress=None, lease=LEASE).held
    with pytest.raises(LeaseLost):
        store.release_claim(job.id, claim.token, reason="again")


# --- a host frozen in the middle of a transaction (PostgreSQL: several hosts, row locks)


def test_a_host_frozen_while_publishing_does_not_stall_the_others_taking_back_expired_leases(
    postgres_url: str,
) -> None:
    alpha, beta = open_postgres_store(postgres_url), open_postgres_store(postgres_url)
    try:
        publishing = added(alpha, "a.mkv")
        forgotten = added(alpha, "b.mkv", seconds=1)
        held = claimed(alpha, "alpha", lease=BLINK)
        claimed(alpha, "alpha", lease=BLINK)
        with alpha.transaction():  # alpha stops (SIGSTOP) between its ledger write and its commit
            alpha.finish_claimed(publishing.id, held.token, entry_for(publishing), encoded_at="x", now=T0)

            expired = within(10, lambda: expire_now(beta))

            assert [job.id for job in expired] == [forgotten.id]  # the row alpha holds is left to alpha
    finally:
        alpha.close()
    taken = beta.get_job(publishing.id)
    assert taken is not None and taken.state is JobState.DONE  # alpha's commit went through: not taken back
    beta.close()


def test_a_host_frozen_inside_a_transaction_loses_it_after_its_lease_so_its_rows_are_not_held_forever(
    postgres_url: str,
) -> None:
    lease = timedelta(seconds=3)
    alpha = open_postgres_store(postgres_url)
    beta = open_postgres_store(postgres_url)
    alpha.name_connection(host="alpha", lease=lease)
    try:
        job = added(alpha)
        held = claimed(alpha, "alpha", lease=BLINK)
        frozen = alpha.transaction()
        frozen.__enter__()  # alpha stops inside its publish transaction and never comes back
        alpha.finish_claimed(job.id, held.token, entry_for(job), encoded_at="x", now=T0)

        (expired,) = within(3 * lease.total_seconds(), lambda: expire_now(beta))

        assert expired.id == job.id and expired.state is JobState.QUEUED
        assert beta.load_ledger().entries == ()  # alpha's uncommitted publish is gone with its session
    finally:
        with contextlib.suppress(Exception):
            frozen.__exit__(None, None, None)
        alpha.close()
        beta.close()
