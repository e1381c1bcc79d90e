"""PostgresStore as the agent and the commands open it: several agents on one database, each
connection named after its host, a read-only store that cannot write, and a connection lost and
found again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from agent.store.postgres_schema import SCHEMA_VERSION, migrate
from agent.store.postgres_store import (
    PostgresStore,
    open_postgres_store,
    open_postgres_store_readonly,
)
from agent.store.sql import StoreError
from tests.support.postgres import PostgresCluster

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = open_postgres_store(postgres_url)
    yield opened
    opened.close()


def enqueue(store: PostgresStore, rel_path: str = "a.mkv") -> None:
    store.enqueue(
        library="tv", rel_path=rel_path, fingerprint="1:a", preset_hash="p", output_path=f"TV/{rel_path}",
        reason="new", now=T0,
    )  # fmt: skip


def terminate_connections_of(cluster: PostgresCluster, url: str) -> int:
    """Cut every connection to url's database, as a server restart or a network cut does; return how many."""
    database = url.rsplit("/", 1)[1]
    with psycopg.connect(cluster.admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchall()
    return len(rows)


def application_names(url: str) -> list[str]:
    with psycopg.connect(url) as other:
        return [str(row[0]) for row in other.execute("SELECT application_name FROM pg_stat_activity").fetchall()]


def test_two_agents_open_one_store_side_by_side_each_named_in_pg_stat_activity(
    store: PostgresStore, postgres_url: str
) -> None:
    store.name_connection(host="nas-1", lease=timedelta(seconds=30))
    second = open_postgres_store(postgres_url)
    try:
        # no longer refused: jobs are leased, one host plans
        second.name_connection(host="desktop", lease=timedelta(seconds=30))
        enqueue(store, "from-nas-1.mkv")
        enqueue(second, "from-desktop.mkv")
        assert sorted(job.rel_path for job in store.list_jobs()) == ["from-desktop.mkv", "from-nas-1.mkv"]
        assert {"hb2r run on nas-1", "hb2r run on desktop"} <= set(application_names(postgres_url))
    finally:
        second.close()


def test_a_lost_connection_is_opened_again_and_named_again(
    store: PostgresStore, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    store.name_connection(host="nas-1", lease=timedelta(seconds=30))
    enqueue(store)
    assert terminate_connections_of(postgres_cluster, postgres_url) == 1

    # The statement that finds the connection gone fails (it may or may not have run: it is
    # not repeated behind the caller's back); the next one connects again.
    with pytest.raises(StoreError, match="terminating connection"):
        store.list_jobs()
    assert [job.rel_path for job in store.list_jobs()] == ["a.mkv"]
    assert "hb2r run on nas-1" in application_names(postgres_url)


def test_a_connection_lost_inside_a_transaction_fails_it_rather_than_finishing_it_in_pieces(
    store: PostgresStore, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    with pytest.raises(StoreError), store.transaction():
        enqueue(store, "first.mkv")
        terminate_connections_of(postgres_cluster, postgres_url)
        enqueue(store, "second.mkv")

    assert store.list_jobs() == []


def test_a_read_only_store_cannot_write(store: PostgresStore, postgres_url: str) -> None:
    enqueue(store)
    readonly = open_postgres_store_readonly(postgres_url)
    assert readonly is not None
    try:
        assert [job.rel_path for job in readonly.list_jobs()] == ["a.mkv"]
        with pytest.raises(StoreError, match="read-only transaction"):
            enqueue(readonly, "b.mkv")
        with pytest.raises(StoreError, match="read-only transaction"), readonly.transaction():
            readonly.hold("tv", reason="x", since=T0.isoformat())
    finally:
        readonly.close()
    assert [job.rel_path for job in store.list_jobs()] == ["a.mkv"]


def test_a_read_only_open_of_an_empty_database_finds_no_state_and_makes_none(postgres_url: str) -> None:
    assert open_postgres_store_readonly(postgres_url) is None

    with psycopg.connect(postgres_url) as other:
        tables = other.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert tables == (0,)


def test_a_read_only_open_of_an_older_schema_says_to_start_the_agent_first(postgres_url: str) -> None:
    from agent.store.postgres import connect_postgres
    from agent.store.postgres_schema import MIGRATIONS

    older = connect_postgres(postgres_url)
    migrate(older, migrations=MIGRATIONS[: SCHEMA_VERSION - 1])
    older.close()

    with pytest.raises(StoreError) as refused:
        open_postgres_store_readonly(postgres_url)

    assert f"store schema {SCHEMA_VERSION - 1} is older than this hb2r knows ({SCHEMA_VERSION})" in str(refused.value)
    assert "start `hb2r run` once" in str(refused.value)


@pytest.fixture
def linguistic_url(postgres_cluster: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database whose text collation is a language's (ICU en-US), as `createdb` on a host with
    LANG=en_US.UTF-8 makes; the test cluster's own databases sort by bytes (C)."""
    name = f"hb2r_icu_{tmp_path_factory.getbasetemp().name.replace('-', '_')}"
    with psycopg.connect(postgres_cluster.admin_url, autocommit=True) as admin:
        admin.execute(
            f'CREATE DATABASE "{name}" OWNER hb2r TEMPLATE template0 '
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.utf8'"
        )
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop_database(name)


def test_names_come_back_in_the_same_order_as_from_sqlite_whatever_the_database_collation(
    linguistic_url: str,
) -> None:
    from agent.domain import UserChange, UserChangeKind

    names = ["bob", "Alice", "_ops", "carol-2", "carol1"]
    store = open_postgres_store(linguistic_url)
    try:
        for name in names:
            store.apply_user_change(
                UserChange(UserChangeKind.ADD, name, "user", "$2b$04$" + "x" * 53), now=T0.isoformat()
            )
            store.hold(name, reason="x", since=T0.isoformat())

        assert [user.name for user in store.load_users()] == sorted(names)  # code point order, as SQLite's BINARY
        assert list(store.load_holds()) == sorted(names)
    finally:
        store.close()


def test_a_leader_frozen_inside_a_pass_transaction_does_not_keep_the_lease_from_the_next_host(
    postgres_url: str,
) -> None:
    """A leader stopped (SIGSTOP, a paused VM) mid-pass holds the leader row share-locked; the
    server must end that transaction once its lease has run out, so another host can take over
    (found by tests/e2e/test_several_hosts.py). The frozen leader is a connection left idle in
    its fenced transaction; the taker another connection."""
    lease = timedelta(seconds=3)
    leader, taker = open_postgres_store(postgres_url), open_postgres_store(postgres_url)
    frozen, thawed = threading.Event(), threading.Event()
    ended: list[StoreError] = []
    thaw_at_last = threading.Timer(15, thawed.set)  # else a blocked taker would wait forever
    try:
        held = leader.take_or_renew_leadership("nas1", lease=lease)
        assert held is not None
        fenced = leader.fenced(held)

        def freeze_mid_pass() -> None:
            try:
                with fenced.transaction():
                    fenced.list_jobs()  # the pass has read (and share-locked the leader row)
                    frozen.set()
                    thawed.wait(timeout=60)
                    fenced.list_jobs()  # thawed: its next statement
            except StoreError as error:
                ended.append(error)

        pass_thread = threading.Thread(target=freeze_mid_pass)
        pass_thread.start()
        assert frozen.wait(timeout=10)
        thaw_at_last.start()
        began = time.monotonic()
        taken = None
        while taken is None and time.monotonic() - began < 20:
            taken = taker.take_or_renew_leadership("desktop", lease=lease)  # blocks while the row is locked
            time.sleep(0.2)
        waited = time.monotonic() - began
        assert taken is not None and taken.epoch == held.epoch + 1, taken
        assert waited < lease.total_seconds() + 3, waited
    finally:
        thawed.set()
        thaw_at_last.cancel()
        pass_thread.join(timeout=30)
        leader.close()
        taker.close()
    assert len(ended) == 1  # the thawed leader's transaction failed: it wrote nothing more
