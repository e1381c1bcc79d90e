"""PostgresDatabase against a real PostgreSQL (the throwaway cluster of tests/support/postgres.py).

What the store modules rely on: the same qmark SQL text runs as on SQLite, statements commit
by themselves outside `transaction()`, a failing block leaves nothing behind, nested blocks
join the outer one, and a refused connection says where to without telling the password.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from agent.store.postgres import PostgresDatabase, connect_postgres, qmark_to_pyformat
from agent.store.sql import StoreError
from tests.support.ports import free_port
from tests.support.postgres import PostgresCluster, server_bin_dir


@pytest.fixture
def database(postgres_url: str) -> Iterator[PostgresDatabase]:
    db = connect_postgres(postgres_url)
    db.execute("CREATE TABLE notes (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
    yield db
    db.close()


def rows_seen_by_another_connection(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as other:
        return other.execute("SELECT id, body FROM notes ORDER BY id").fetchall()


def test_the_clusters_url_reaches_a_database_owned_by_hb2r(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    # How long the cluster takes to start is printed, not asserted: a shared machine makes it noisy.
    print(f"\nPostgreSQL test cluster started in {postgres_cluster.started_in_seconds:.2f} s")
    assert postgres_url.startswith(f"postgresql://hb2r:{postgres_cluster.password}@127.0.0.1:{postgres_cluster.port}/")
    with psycopg.connect(postgres_url) as connection:
        row = connection.execute(
            "SELECT current_user, pg_catalog.pg_get_userbyid(datdba), inet_server_addr()::text"
            " FROM pg_database WHERE datname = current_database()"
        ).fetchone()
    assert row == ("hb2r", "hb2r", "127.0.0.1/32")


@pytest.mark.parametrize(
    "sql, params, rewritten, expected",
    [
        pytest.param("SELECT ?::int + ?::int", (2, 3), "SELECT %s::int + %s::int", (5,), id="placeholders"),
        pytest.param("SELECT '?', ?::text", ("x",), "SELECT '?', %s::text", ("?", "x"), id="question-mark-in-literal"),
        pytest.param(
            "SELECT 'it''s ?', ?::text",
            ("y",),
            "SELECT 'it''s ?', %s::text",
            ("it's ?", "y"),
            id="doubled-quote-in-literal",
        ),
        pytest.param("SELECT 'a%b', 5 % ?::int", (3,), "SELECT 'a%%b', 5 %% %s::int", ("a%b", 2), id="percent"),
        pytest.param("SELECT 'a%s'", (), "SELECT 'a%%s'", ("a%s",), id="percent-s-without-parameters"),
        pytest.param('SELECT 1 AS "a?"', (), 'SELECT 1 AS "a?"', (1,), id="question-mark-in-identifier"),
        pytest.param(
            "SELECT ? IS NULL, ? IS NULL",
            (None, "x"),
            "SELECT %s IS NULL, %s IS NULL",
            (True, False),
            id="untyped-null-test",
        ),
        pytest.param(
            "SELECT ?, ?",
            ("it's '?' --", True),
            "SELECT %s, %s",
            ("it's '?' --", 1),
            id="quotes-in-values-and-bool-as-0-1",
        ),
        pytest.param("SELECT ?::text LIKE 'ab%'", ("abc",), "SELECT %s::text LIKE 'ab%%'", (True,), id="like-pattern"),
    ],
)
def test_qmark_sql_runs_unchanged_on_postgresql(
    database: PostgresDatabase, sql: str, params: tuple[Any, ...], rewritten: str, expected: tuple[Any, ...]
) -> None:
    assert qmark_to_pyformat(sql) == rewritten
    assert database.execute(sql, params).fetchone() == expected


def test_rows_are_plain_tuples_and_statements_without_rows_fetch_nothing(database: PostgresDatabase) -> None:
    inserted = database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, "one"))
    assert inserted.rowcount == 1
    assert inserted.fetchone() is None
    assert inserted.fetchall() == []
    database.executemany("INSERT INTO notes (id, body) VALUES (?, ?)", [(2, "two"), (3, "three")])
    rows = database.execute("SELECT id, body FROM notes WHERE id >= ? ORDER BY id", (2,)).fetchall()
    assert rows == [(2, "two"), (3, "three")]
    assert all(type(row) is tuple for row in rows)


def test_outside_a_transaction_each_statement_is_committed_at_once(
    database: PostgresDatabase, postgres_url: str
) -> None:
    database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, "kept"))
    assert rows_seen_by_another_connection(postgres_url) == [(1, "kept")]


def test_a_transaction_commits_at_its_end_and_a_failing_one_leaves_nothing(
    database: PostgresDatabase, postgres_url: str
) -> None:
    with database.transaction():
        database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, "committed"))
        assert rows_seen_by_another_connection(postgres_url) == []  # not before the block ends
    assert rows_seen_by_another_connection(postgres_url) == [(1, "committed")]

    with pytest.raises(StoreError, match="duplicate key"), database.transaction():
        database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (2, "rolled back"))
        database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, "duplicate"))
    assert rows_seen_by_another_connection(postgres_url) == [(1, "committed")]
    assert not database.in_transaction
    database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (3, "after"))  # the connection still works
    assert rows_seen_by_another_connection(postgres_url) == [(1, "committed"), (3, "after")]


def test_a_nested_transaction_joins_the_outer_one(database: PostgresDatabase, postgres_url: str) -> None:
    with pytest.raises(RuntimeError), database.transaction():
        with database.transaction():
            database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, "inner"))
        assert rows_seen_by_another_connection(postgres_url) == []  # the inner end commits nothing
        raise RuntimeError("the outer block fails")
    assert rows_seen_by_another_connection(postgres_url) == []  # so the inner insert is undone too

    with database.transaction():
        with database.transaction():
            database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (2, "inner"))
        database.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (3, "outer"))
    assert rows_seen_by_another_connection(postgres_url) == [(2, "inner"), (3, "outer")]


def test_a_wrong_password_is_refused_with_where_and_why_but_never_the_password(
    postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    database_name = postgres_url.rsplit("/", 1)[1]
    wrong = "Wrong:Secret/4711"
    with pytest.raises(StoreError) as refused:
        connect_postgres(postgres_cluster.url(database_name, password=quote(wrong, safe="")))
    message = str(refused.value)
    assert f"127.0.0.1:{postgres_cluster.port}/{database_name}" in message
    assert "user hb2r" in message
    assert "\n" not in message  # one line, for a log or a terminal
    assert "password authentication failed" in message
    assert wrong not in message and quote(wrong, safe="") not in message
    assert wrong not in repr(refused.value.__cause__) and refused.value.__suppress_context__


def test_the_password_file_is_used_and_an_unreachable_server_is_named(
    postgres_cluster: PostgresCluster, postgres_url: str, tmp_path: Path
) -> None:
    database_name = postgres_url.rsplit("/", 1)[1]
    password_file = tmp_path / "store.password"
    password_file.write_text(postgres_cluster.password + "\n")
    password_file.chmod(0o600)
    url_without_password = f"postgresql://hb2r@127.0.0.1:{postgres_cluster.port}/{database_name}"
    database = connect_postgres(url_without_password, password_file=password_file)
    assert database.execute("SELECT current_user").fetchone() == ("hb2r",)
    database.close()

    closed_port = _a_closed_loopback_port()
    began = time.monotonic()
    with pytest.raises(
        StoreError, match=rf"cannot connect to PostgreSQL at 127\.0\.0\.1:{closed_port}/x "
    ) as unreachable:
        connect_postgres(f"postgresql://hb2r:pw@127.0.0.1:{closed_port}/x")
    assert "\n" not in str(unreachable.value)
    assert time.monotonic() - began < 5

    with pytest.raises(StoreError, match=r"cannot read the PostgreSQL password file .*missing"):
        connect_postgres(url_without_password, password_file=tmp_path / "missing")

    with pytest.raises(StoreError, match=r"PostgreSQL at 127\.0\.0\.1:nope/x .*invalid integer value \"nope\"") as bad:
        connect_postgres("postgresql://hb2r:Secret-9@127.0.0.1:nope/x")
    assert "Secret-9" not in str(bad.value)
    with pytest.raises(
        StoreError, match=r"store URL postgresql://hb2r:<redacted>@db/x\?colour=red is malformed: .*colour"
    ):
        connect_postgres("postgresql://hb2r:Secret-9@db/x?colour=red")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644])
def test_a_password_file_others_may_read_is_refused_naming_it(
    postgres_cluster: PostgresCluster, postgres_url: str, tmp_path: Path, mode: int
) -> None:
    password_file = tmp_path / "store.password"
    password_file.write_text(postgres_cluster.password + "\n")
    password_file.chmod(mode)
    url_without_password = postgres_url.replace(f":{postgres_cluster.password}@", "@")

    with pytest.raises(StoreError) as refused:
        connect_postgres(url_without_password, password_file=password_file)

    assert str(refused.value) == (
        f"the PostgreSQL password file {password_file} may be read by "
        f"{'its group' if mode & 0o040 else ''}{' and ' if mode & 0o040 and mode & 0o004 else ''}"
        f"{'others' if mode & 0o004 else ''} (mode {mode:04o}): chmod 600 {password_file}"
    )
    assert postgres_cluster.password not in str(refused.value)


def _a_closed_loopback_port() -> int:
    return free_port()  # bound and released: nothing listens there now


def test_without_the_server_binaries_the_fixture_fails_and_says_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"not found in .*: run `make test`"):
        server_bin_dir(tmp_path)


def test_the_newest_installed_major_version_is_used(tmp_path: Path) -> None:
    for version in ("9.6", "15", "16", "17"):
        (tmp_path / version / "bin").mkdir(parents=True)
        for tool in ("initdb", "pg_ctl") if version != "17" else ("initdb",):  # 17 is half-installed
            (tmp_path / version / "bin" / tool).touch()
    assert server_bin_dir(tmp_path) == tmp_path / "16" / "bin"
