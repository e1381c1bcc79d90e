"""`hb2r run` on a PostgreSQL store: a real agent process, the real HandBrakeCLI, a tiny clip,
and the throwaway cluster. What must hold: the output published and verified once, its ledger
row and done job in PostgreSQL (no SQLite state beside it), `hb2r plan` then in sync; and a
second agent on the same database refused, naming the host that runs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
from postgres import PostgresCluster
from test_run import Agent, archive_files, checksums, hb2r, make_clip, published, start, wait_for, write_config

__all__ = ["start"]  # the fixture, used by name


def on_postgres(config: Path, *, url: str, host: str, password_file: Path | None = None) -> Path:
    """Add the store and the host name to a test_run config; return its path."""
    secret = f"  password_file: {password_file}\n" if password_file else ""
    config.write_text(config.read_text() + f"store:\n  url: {url}\n{secret}host: {{name: {host}}}\n")
    return config


def rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as connection:
        return connection.execute(query).fetchall()


def test_an_agent_on_postgresql_encodes_once_and_keeps_its_state_there(
    tmp_path: Path,
    start: Callable[[Path], Agent],
    postgres_url: str,
    postgres_cluster: PostgresCluster,
) -> None:
    secret = tmp_path / "store.password"
    secret.write_text(postgres_cluster.password + "\n")
    secret.chmod(0o600)
    url = postgres_url.replace(f":{postgres_cluster.password}@", "@")
    config = on_postgres(write_config(tmp_path), url=url, host="nas-1", password_file=secret)
    make_clip(tmp_path / "tv/Show/E01.mkv", seconds=1)
    sources = checksums(tmp_path / "tv")
    agent = start(config)

    wait_for(lambda: published(tmp_path) == ["TV/Show/E01.mkv"], what="the output published", agent=agent)
    wait_for(
        lambda: rows(postgres_url, "SELECT rel_path, state FROM jobs") == [("Show/E01.mkv", "done")],
        what="its job done in PostgreSQL",
        agent=agent,
    )
    assert rows(postgres_url, "SELECT library, rel_path, output_path, origin FROM ledger") == [
        ("tv", "Show/E01.mkv", "TV/Show/E01.mkv", "encoded")
    ]
    plan = hb2r("plan", str(config))
    jobs = hb2r("jobs", "--state", "done", str(config))

    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "in sync" in plan.stdout
    assert jobs.returncode == 0 and "Show/E01.mkv" in jobs.stdout, jobs.stdout + jobs.stderr
    assert agent.stop() == 0
    assert len(agent.events("job started")) == 1
    database = postgres_url.rsplit("/", 1)[1]
    assert agent.events("agent started")[0]["store"] == f"PostgreSQL store 127.0.0.1:{postgres_cluster.port}/{database}"
    assert archive_files(tmp_path) == ["TV/Show/E01.mkv"]
    assert checksums(tmp_path / "tv") == sources
    assert not (tmp_path / "state" / "hb2r.db").exists()  # the state is in PostgreSQL only
    assert postgres_cluster.password not in agent.log_path.read_text()


def test_a_second_agent_on_the_same_database_is_refused_naming_the_host_that_runs(
    tmp_path: Path, start: Callable[[Path], Agent], postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = start(on_postgres(write_config(tmp_path / "first"), url=postgres_url, host="nas-1"))
    wait_for(lambda: first.events("agent started"), what="the first agent started", agent=first)

    second = start(on_postgres(write_config(tmp_path / "second"), url=postgres_url, host="desktop"))
    assert second.process.wait(timeout=60) == 1
    output = second.log_path.read_text()
    database = postgres_url.rsplit("/", 1)[1]
    assert (
        f"error: PostgreSQL store 127.0.0.1:{postgres_cluster.port}/{database}: the agent on host nas-1 (pid " in output
    )
    assert "is running on this store; one `hb2r run` per PostgreSQL store" in output
    assert postgres_cluster.password not in output

    assert first.process.poll() is None  # the first one carries on
    assert first.stop() == 0
    again = start(on_postgres(write_config(tmp_path / "second"), url=postgres_url, host="desktop"))
    wait_for(lambda: again.events("agent started"), what="the second agent started once the first stopped", agent=again)
