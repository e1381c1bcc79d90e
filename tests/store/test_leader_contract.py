"""One planner at a time, and the hosts table, as every store must keep them.

The leader lease is timed by the database's clock: the tests that need it to run out take a
few milliseconds' lease and poll with a deadline. A "paused" former leader is one that simply
stops renewing: what SIGSTOP does to it, without stopping the test process.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest

from agent.store.hosts import HostReport
from agent.store.leader import Leadership, NotLeader
from agent.store.postgres_store import open_postgres_store
from agent.store.protocol import Store
from tests.support.jobs import new_job
from tests.support.waiting import wait_for, within

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
BLINK = timedelta(milliseconds=5)  # a lease that runs out while the test looks


def lead(store: Store, host: str, *, lease: timedelta = LEASE) -> Leadership:
    taken = store.take_or_renew_leadership(host, lease=lease)
    assert taken is not None, f"{host} could not take the free leader lease"
    return taken


def take_after_expiry(store: Store, host: str) -> Leadership:
    return wait_for(
        lambda: store.take_or_renew_leadership(host, lease=LEASE), what="the leadership", deadline=5, interval=0.01
    )


def enqueue(store: Store, rel_path: str) -> object:
    return store.enqueue(**new_job(rel_path))


# --- the leader lease


def test_the_first_host_takes_the_free_lease_with_epoch_1_and_another_host_is_refused(store: Store) -> None:
    before = datetime.now(UTC)
    alpha = lead(store, "alpha")

    assert (alpha.host, alpha.epoch) == ("alpha", 1)
    # The test databases run on this machine: the database's clock is this clock (1 s of slack).
    assert datetime.fromisoformat(alpha.expires_at) >= before + LEASE - timedelta(seconds=1)
    assert store.take_or_renew_leadership("beta", lease=LEASE) is None
    assert store.leadership() == alpha


def test_the_holder_renews_under_the_same_epoch_and_a_later_expiry(store: Store) -> None:
    first = lead(store, "alpha")
    renewed = wait_for(
        lambda: (found := lead(store, "alpha")).expires_at > first.expires_at and found,  # the clock moves on
        what="a later expiry",
        deadline=5,
        interval=0.01,
    )

    assert (renewed.host, renewed.epoch) == ("alpha", first.epoch)
    assert store.leadership() == renewed


def test_a_lease_that_runs_out_is_taken_by_another_host_with_the_next_epoch(store: Store) -> None:
    alpha = lead(store, "alpha", lease=BLINK)

    beta = take_after_expiry(store, "beta")

    assert (beta.host, beta.epoch) == ("beta", alpha.epoch + 1)
    assert store.take_or_renew_leadership("alpha", lease=LEASE) is None  # alpha comes back a follower
    assert store.leadership() == beta


def test_a_lapsed_leader_that_takes_the_lease_back_gets_a_new_epoch(store: Store) -> None:
    alpha = lead(store, "alpha", lease=BLINK)
    wait_for(lambda: store.leadership() is None, what="no leader", deadline=5, interval=0.01)

    again = lead(store, "alpha")

    assert again.epoch == alpha.epoch + 1


def test_a_resigned_lease_is_free_at_once_and_the_next_taker_bumps_the_epoch(store: Store) -> None:
    alpha = lead(store, "alpha")

    assert store.resign("alpha", alpha.epoch) is True
    assert store.leadership() is None
    beta = lead(store, "beta")

    assert beta.epoch == alpha.epoch + 1
    assert store.resign("alpha", alpha.epoch) is False  # no longer its to give up


def test_the_leaders_fenced_writes_go_through_in_one_transaction(store: Store) -> None:
    alpha = lead(store, "alpha")
    fenced = store.fenced(alpha)

    with fenced.transaction():
        enqueue(fenced, "Show/E01.mkv")
        enqueue(fenced, "Show/E02.mkv")
    enqueue(fenced, "Show/E03.mkv")  # a statement of its own is fenced in a transaction of its own

    assert sorted(job.rel_path for job in store.list_jobs()) == ["Show/E01.mkv", "Show/E02.mkv", "Show/E03.mkv"]


def test_a_former_leaders_fenced_write_is_refused_after_another_host_took_over(store: Store) -> None:
    alpha = lead(store, "alpha", lease=BLINK)
    paused = store.fenced(alpha)  # alpha stops renewing (paused) while a pass holds this view
    take_after_expiry(store, "beta")

    refused = r"alpha no longer leads under epoch 1 \(beta holds it under epoch 2\)"
    with pytest.raises(NotLeader, match=refused), paused.transaction():
        enqueue(paused, "Show/E01.mkv")
    with pytest.raises(NotLeader):
        enqueue(paused, "Show/E02.mkv")

    assert store.list_jobs() == []


def test_a_fenced_write_is_refused_once_the_lease_ran_out_even_before_anyone_took_it(store: Store) -> None:
    alpha = lead(store, "alpha", lease=BLINK)
    fenced = store.fenced(alpha)
    wait_for(lambda: store.leadership() is None, what="no leader", deadline=5, interval=0.01)

    with pytest.raises(NotLeader, match="no host holds it"):
        enqueue(fenced, "Show/E01.mkv")
    assert store.list_jobs() == []


# --- hosts


def test_a_host_report_is_kept_with_the_database_time_and_updated_in_place(store: Store) -> None:
    before = datetime.now(UTC)
    store.report_host(HostReport("beta", "1.0", "1.6.1", ("tv", "movies"), 1))
    store.report_host(HostReport("alpha", "1.0", None, (), 0))
    store.report_host(HostReport("beta", "1.1", "1.7.0", ("tv",), 2))

    hosts = store.list_hosts()

    assert [host.name for host in hosts] == ["alpha", "beta"]
    beta = hosts[1]
    assert (beta.version, beta.handbrake_version, beta.libraries, beta.running_jobs) == ("1.1", "1.7.0", ("tv",), 2)
    assert datetime.fromisoformat(beta.last_seen) >= before - timedelta(seconds=1)
    assert 0 <= beta.seen_seconds_ago < 5
    assert hosts[0].handbrake_version is None and hosts[0].libraries == ()


# --- PostgreSQL: a former leader frozen inside a pass transaction


def test_a_leader_frozen_in_a_pass_transaction_past_its_lease_is_ended_by_the_host_that_takes_over(
    postgres_url: str,
) -> None:
    alpha, beta = open_postgres_store(postgres_url), open_postgres_store(postgres_url)
    alpha.name_connection(host="alpha", lease=timedelta(seconds=30))
    beta.name_connection(host="beta", lease=timedelta(seconds=30))
    try:
        held = lead(alpha, "alpha", lease=timedelta(milliseconds=300))
        fenced = alpha.fenced(held)
        frozen = fenced.transaction()
        frozen.__enter__()  # the leader row is share-locked until this transaction ends
        enqueue(fenced, "written-by-the-frozen-leader.mkv")
        # A frozen client in the middle of a pipelined batch (psycopg's executemany) leaves the server
        # with no idle timer running: PostgreSQL starts it only once it has answered a whole request.
        # That state cannot be made on demand here, so the test turns the timer off to stand for it.
        alpha.database.execute("SELECT set_config('idle_in_transaction_session_timeout', '0', true)")

        taken = within(10, lambda: take_after_expiry(beta, "beta"))

        assert taken.epoch == held.epoch + 1
        assert beta.list_jobs() == []  # the frozen leader's write died with its transaction
    finally:
        with contextlib.suppress(Exception):
            frozen.__exit__(None, None, None)
        alpha.close()
        beta.close()


def test_a_follower_does_not_wait_for_the_leaders_pass_transaction_to_learn_it_follows(postgres_url: str) -> None:
    alpha, beta = open_postgres_store(postgres_url), open_postgres_store(postgres_url)
    try:
        fenced = alpha.fenced(lead(alpha, "alpha"))
        with fenced.transaction():  # a long pass: the leader row is share-locked meanwhile
            assert within(5, lambda: beta.take_or_renew_leadership("beta", lease=LEASE)) is None
    finally:
        alpha.close()
        beta.close()
