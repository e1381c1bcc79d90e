"""The PostgreSQL schema against a real PostgreSQL: migrations, version refusal, parity with SQLite.

The store modules write one SQL text for both dialects, and `hb2r store migrate` copies
SQLite's tables column by column: so every table, column, key and index of SQLite's schema
must exist in PostgreSQL under the same name.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent.store.copy_state import POSTGRES_ONLY_TABLES
from agent.store.db import open_database
from agent.store.postgres import PostgresDatabase, connect_postgres
from agent.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION, migrate, schema_version
from agent.store.sql import StoreError
from tests.support.postgres import PostgresCluster

NOW = "2026-12-01T12:00:00+00:00"


@pytest.fixture
def database(postgres_url: str) -> Iterator[PostgresDatabase]:
    db = connect_postgres(postgres_url)
    yield db
    db.close()


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(tmp_path / "state")
    yield connection
    connection.close()


def insert_job(database: PostgresDatabase, rel_path: str) -> int:
    row = database.execute(
        "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, created_at, updated_at)"
        " VALUES ('tv', ?, 'f', 'p', ?, 'new', ?, ?) RETURNING id",
        (rel_path, f"TV/{rel_path}", NOW, NOW),
    ).fetchone()
    assert row is not None
    return int(row[0])


def change_seq(database: PostgresDatabase, job_id: int) -> int:
    row = database.execute("SELECT change_seq FROM jobs WHERE id = ?", (job_id,)).fetchone()
    assert row is not None
    return int(row[0])


def test_migrations_bring_an_empty_database_up_to_date_once(database: PostgresDatabase, postgres_url: str) -> None:
    assert schema_version(database) == 0
    assert migrate(database) == SCHEMA_VERSION == len(MIGRATIONS)
    assert database.execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
        (number,) for number in range(1, SCHEMA_VERSION + 1)
    ]
    job_id = insert_job(database, "Show/E01.mkv")

    reopened = connect_postgres(postgres_url)  # as the agent's next start
    try:
        assert migrate(reopened) == SCHEMA_VERSION
        assert reopened.execute("SELECT count(*) FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        assert reopened.execute("SELECT rel_path FROM jobs WHERE id = ?", (job_id,)).fetchone() == ("Show/E01.mkv",)
    finally:
        reopened.close()


def test_hosts_starting_at_once_on_an_empty_database_apply_each_migration_once(postgres_url: str) -> None:
    hosts = [connect_postgres(postgres_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            versions = list(pool.map(migrate, hosts))
        assert versions == [SCHEMA_VERSION] * len(hosts)
        assert hosts[0].execute("SELECT version FROM schema_version ORDER BY version").fetchall() == [
            (number,) for number in range(1, SCHEMA_VERSION + 1)
        ]
    finally:
        for host in hosts:
            host.close()


def test_a_database_migrated_by_an_older_hb2r_gets_the_rest(database: PostgresDatabase) -> None:
    assert migrate(database, migrations=MIGRATIONS[:4]) == 4
    assert migrate(database) == SCHEMA_VERSION
    assert schema_version(database) == SCHEMA_VERSION


def test_files_remembered_before_folders_were_are_filed_under_their_folder(database: PostgresDatabase) -> None:
    migrate(database, migrations=MIGRATIONS[:11])
    database.executemany(
        "INSERT INTO seen_files (library, rel_path, size, mtime_ns) VALUES ('tv', ?, 1, 1)",
        [("Top.mkv",), ("Show/Season 1.5/S01E01 v2.mkv",), ("a.b/c/d.e.mkv",)],
    )

    migrate(database)

    assert dict(database.execute("SELECT rel_path, folder FROM seen_files").fetchall()) == {
        "Top.mkv": "",
        "Show/Season 1.5/S01E01 v2.mkv": "Show/Season 1.5",
        "a.b/c/d.e.mkv": "a.b/c",
    }


def test_a_failing_migration_is_undone_and_those_before_it_stay(database: PostgresDatabase) -> None:
    broken = (*MIGRATIONS[:2], "CREATE TABLE half_done (x INTEGER); SELECT no_such_function();")
    with pytest.raises(StoreError, match=r"store schema migration 3 failed: .*no_such_function"):
        migrate(database, migrations=broken)
    assert schema_version(database) == 2
    assert database.execute("SELECT to_regclass('half_done')").fetchone() == (None,)
    assert not database.in_transaction


def test_a_schema_newer_than_this_hb2r_knows_is_refused_and_left_untouched(
    database: PostgresDatabase, postgres_cluster: PostgresCluster
) -> None:
    migrate(database)
    newer = SCHEMA_VERSION + 1
    database.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (newer, NOW))
    with pytest.raises(
        StoreError, match=rf"store schema {newer} is newer than this hb2r knows \({SCHEMA_VERSION}\): upgrade hb2r"
    ) as refused:
        migrate(database)
    assert f"postgresql://hb2r:<redacted>@127.0.0.1:{postgres_cluster.port}/" in str(
        refused.value
    )  # where, not the password
    assert postgres_cluster.password not in str(refused.value)
    assert schema_version(database) == newer


def test_constraints_refuse_what_sqlite_refuses(database: PostgresDatabase) -> None:
    migrate(database)
    insert_job(database, "Show/E01.mkv")
    with pytest.raises(StoreError, match="duplicate key"):
        insert_job(database, "Show/E01.mkv")
    with pytest.raises(StoreError, match="jobs_state_check"):
        database.execute("UPDATE jobs SET state = 'lost'")
    with pytest.raises(StoreError, match="ledger_size_check"):
        database.execute(
            "INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path, encoded_at)"
            " VALUES ('tv', 'a.mkv', 'f', -1, 0, 'p', 'TV/a.mkv', ?)",
            (NOW,),
        )
    big = 5 * 2**40  # a 5 TiB size and a nanosecond clock do not fit 32 bits
    database.execute(
        "INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path, encoded_at)"
        " VALUES ('tv', 'b.mkv', 'f', ?, ?, 'p', 'TV/b.mkv', ?)",
        (big, 1_764_590_400_123_456_789, NOW),
    )
    assert database.execute("SELECT size, mtime_ns, origin FROM ledger").fetchone() == (
        big,
        1_764_590_400_123_456_789,
        "encoded",
    )


def test_every_job_change_gets_a_higher_change_number_unless_the_update_sets_one(database: PostgresDatabase) -> None:
    migrate(database)
    first = insert_job(database, "a.mkv")
    second = insert_job(database, "b.mkv")
    assert change_seq(database, second) > change_seq(database, first) > 0
    before = change_seq(database, second)
    database.execute("UPDATE jobs SET state = 'running' WHERE id = ?", (first,))
    assert change_seq(database, first) > before
    database.execute("UPDATE jobs SET change_seq = ? WHERE id = ?", (7, second))
    assert change_seq(database, second) == 7


def sqlite_schema(connection: sqlite3.Connection) -> dict[str, dict[str, object]]:
    tables = [name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    schema: dict[str, dict[str, object]] = {}
    for table in tables:
        columns = connection.execute(f"PRAGMA table_info({table})").fetchall()
        uniques = set()
        for _, index_name, unique, _origin, _partial in connection.execute(f"PRAGMA index_list({table})"):
            if unique:
                info = connection.execute(f"PRAGMA index_info({index_name})").fetchall()
                uniques.add(tuple(column for _, _, column in sorted(info)))
        primary_key = tuple(name for _, name in sorted((column[5], column[1]) for column in columns if column[5]))
        if primary_key:
            uniques.add(primary_key)
        schema[table] = {
            "columns": [name for _, name, *_ in columns],
            "not_null": sorted(name for _, name, _, notnull, _, pk in columns if notnull or pk),
            "primary_key": primary_key,
            "unique": uniques,
        }
    return schema


def postgres_schema(database: PostgresDatabase, tables: list[str]) -> dict[str, dict[str, object]]:
    schema: dict[str, dict[str, object]] = {}
    for table in tables:
        columns = database.execute(
            "SELECT column_name, is_nullable FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = ? ORDER BY ordinal_position",
            (table,),
        ).fetchall()
        keys = database.execute(
            "SELECT i.indisprimary, array_agg(a.attname::text ORDER BY k.ord)"
            " FROM pg_index i"
            " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
            " WHERE i.indrelid = to_regclass(?) AND i.indisunique GROUP BY i.indexrelid, i.indisprimary",
            (table,),
        ).fetchall()
        schema[table] = {
            "columns": [name for name, _ in columns],
            "not_null": sorted(name for name, nullable in columns if nullable == "NO"),
            "primary_key": next((tuple(names) for primary, names in keys if primary), ()),
            "unique": {tuple(names) for _, names in keys},
        }
    return schema


def test_postgresql_has_every_table_column_key_and_index_of_sqlite(
    database: PostgresDatabase, sqlite_database: sqlite3.Connection
) -> None:
    migrate(database)
    expected = sqlite_schema(sqlite_database)
    assert {"jobs", "ledger", "users", "seen_files", "library_scans", "agent_status"} <= set(expected)
    actual = postgres_schema(database, sorted(expected))
    for table, shape in expected.items():
        assert actual[table] == shape, table
    postgres_tables = {
        name
        for (name,) in database.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
    }
    assert postgres_tables == set(expected) | POSTGRES_ONLY_TABLES  # those `hb2r store migrate` knows

    sqlite_indexes = {
        (table, name)
        for name, table in sqlite_database.execute(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
        )
    }
    postgres_indexes = set(
        database.execute(
            "SELECT tablename::text, indexname::text FROM pg_indexes WHERE schemaname = 'public'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        ).fetchall()
    )
    assert postgres_indexes == sqlite_indexes
