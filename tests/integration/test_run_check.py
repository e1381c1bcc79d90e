"""The deploy's question before it touches an agent: could this host run on the PostgreSQL store now?"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.store.postgres import connect_postgres
from agent.store.postgres_schema import SCHEMA_VERSION
from agent.store.postgres_store import open_postgres_store
from agent.store.run_check import check_can_run, main
from agent.store.sql import StoreError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).isoformat()


def test_an_empty_database_with_the_right_password_is_usable_and_stays_empty(postgres_url: str) -> None:
    check_can_run(postgres_url, host="desktop")

    database = connect_postgres(postgres_url)
    try:
        tables = database.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        assert tables.fetchone() == (0,)  # the check made no schema: the agent's first start does
    finally:
        database.close()


def test_another_hosts_agent_on_the_store_is_no_obstacle(postgres_url: str) -> None:
    running = open_postgres_store(postgres_url)
    running.name_connection(host="nas", lease=timedelta(seconds=30))
    try:
        check_can_run(postgres_url, host="desktop")  # several agents share one store
        check_can_run(postgres_url, host="nas")
    finally:
        running.close()


def test_a_store_schema_newer_than_the_release_is_refused_naming_both(postgres_url: str) -> None:
    open_postgres_store(postgres_url).close()
    database = connect_postgres(postgres_url)
    try:
        database.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (SCHEMA_VERSION + 1, NOW))
    finally:
        database.close()

    with pytest.raises(StoreError, match=rf"store schema {SCHEMA_VERSION + 1} is newer than this hb2r knows"):
        check_can_run(postgres_url, host="desktop")


def test_a_wrong_password_is_one_line_without_the_password(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    url = postgres_url.replace(postgres_url.split("//")[1].split("@")[0], "hb2r")  # the URL without its password

    assert main([url, "desktop", "--password-file", str(wrong)]) == 1

    message = capsys.readouterr().err
    assert 'password authentication failed for user "hb2r"' in message and "not-the-password" not in message
    assert len(message.strip().splitlines()) == 1
