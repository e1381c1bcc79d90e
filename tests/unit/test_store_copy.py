"""The decisions of `hb2r store migrate` as tables: the tables copied, the targets refused, what is printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli_store import describe_migration, without_password
from agent.store.copy_state import (
    Copied,
    MigrateError,
    count_problems,
    rows_problem,
    tables_to_copy,
    version_problem,
)
from agent.store.db import SCHEMA_VERSION

WHERE = "postgresql://hb2r:<redacted>@db:5432/hb2r"


def test_tables_are_copied_in_name_order_with_sqlites_columns_and_postgresqls_version_table_is_ignored() -> None:
    sqlite = {"users": ["name", "role"], "jobs": ["id", "state"]}
    postgres = {"jobs": ["state", "id"], "users": ["name", "role"], "schema_version": ["version", "applied_at"]}
    assert tables_to_copy(sqlite, postgres) == [("jobs", ("id", "state")), ("users", ("name", "role"))]


@pytest.mark.parametrize(
    "sqlite, postgres, message",
    [
        pytest.param(
            {"jobs": ["id"], "notes": ["x"]},
            {"jobs": ["id"]},
            "tables only in SQLite: notes",
            id="table-only-in-sqlite",
        ),
        pytest.param(
            {"jobs": ["id"]},
            {"jobs": ["id"], "hosts": ["name"]},
            "tables only in PostgreSQL: hosts",
            id="table-only-in-postgres",
        ),
        pytest.param(
            {"jobs": ["id", "lease"]},
            {"jobs": ["id"]},
            "columns of jobs only in SQLite: lease",
            id="column-only-in-sqlite",
        ),
        pytest.param(
            {"jobs": ["id"]},
            {"jobs": ["id", "token"]},
            "columns of jobs only in PostgreSQL: token",
            id="column-only-in-postgres",
        ),
    ],
)
def test_schemas_that_differ_stop_the_copy_naming_the_difference(
    sqlite: dict[str, list[str]], postgres: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(MigrateError, match=message):
        tables_to_copy(sqlite, postgres)


@pytest.mark.parametrize(
    "version, refused",
    [
        pytest.param(0, False, id="no-schema-yet"),
        pytest.param(SCHEMA_VERSION, False, id="this-hb2rs-schema"),
        pytest.param(SCHEMA_VERSION - 1, True, id="older-schema"),
        pytest.param(SCHEMA_VERSION + 1, True, id="newer-schema"),
    ],
)
def test_only_a_database_without_schema_or_at_this_schema_can_take_the_copy(version: int, refused: bool) -> None:
    problem = version_problem(location=WHERE, version=version)
    assert (problem is not None) == refused
    if problem:
        assert f"{WHERE} has hb2r store schema version {version}, not this hb2r's ({SCHEMA_VERSION})" in problem


def test_a_target_with_rows_is_refused_saying_what_is_there() -> None:
    assert rows_problem(location=WHERE, rows={"jobs": 0, "users": 0}) is None
    problem = rows_problem(location=WHERE, rows={"jobs": 3, "ledger": 0, "users": 1})
    assert problem is not None
    assert problem.startswith(f"{WHERE} already holds hb2r data (jobs: 3 rows, users: 1 row)")


def test_counts_that_differ_are_each_named() -> None:
    assert count_problems({"jobs": 2, "users": 1}, {"jobs": 2, "users": 1}) == []
    assert count_problems({"jobs": 2, "users": 1}, {"jobs": 1}) == [
        "jobs: 2 rows in SQLite, 1 in PostgreSQL",
        "users: 1 row in SQLite, 0 in PostgreSQL",
    ]


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql://hb2r:pw@db:5433/hb2r?sslmode=require", "postgresql://hb2r@db:5433/hb2r?sslmode=require"),
        ("postgresql://hb2r@db/hb2r", "postgresql://hb2r@db/hb2r"),
        ("postgres://:pw@db/hb2r", "postgres://db/hb2r"),
    ],
)
def test_the_next_step_names_the_url_without_its_password(url: str, shown: str) -> None:
    assert without_password(url) == shown


def test_the_summary_gives_rows_per_table_the_way_back_and_the_next_step() -> None:
    copied = Copied(
        source=Path("/var/lib/hb2r/hb2r.db"), source_schema=4, target=WHERE, rows={"jobs": 3, "users": 1}, requeued=1
    )
    lines = describe_migration(
        copied, next_url="postgresql://hb2r@db/hb2r", config_path=Path("/etc/hb2r/config.yaml"), already_set=False
    )
    assert lines == [
        f"Copied /var/lib/hb2r/hb2r.db (schema 4, migrated in memory) into {WHERE} in one transaction:",
        "  jobs: 3 rows (1 running job put back in the queue)",
        "  users: 1 row",
        "/var/lib/hb2r/hb2r.db is left as it was: to go back, set store.url to sqlite (what ran since is not in it).",
        "Next: set store.url to postgresql://hb2r@db/hb2r in /etc/hb2r/config.yaml (its password in "
        "store.password_file) and start the agent.",
    ]
