"""`hb2r run` on a PostgreSQL store: a real agent process, the real HandBrakeCLI, a tiny clip,
and the throwaway cluster. What must hold: the output published and verified once, its ledger
row and done job in PostgreSQL (no SQLite state beside it), `hb2r plan` then in sync; and a
second agent on the same database running beside it: one plans, each file is encoded once."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.support.agent_process import StartAgent
from tests.support.cli import hb2r
from tests.support.clips import make_clip
from tests.support.configs import write_config
from tests.support.outcomes import archive_files, checksums, published
from tests.support.postgres import PostgresCluster
from tests.support.waiting import wait_for


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
    agents: StartAgent,
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
    agent = agents(config)

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


def sharing(config: Path, *, root: Path) -> Path:
    """Point a test_run config's watched folder and archive at root's (shared storage, as NFS mounts are)."""
    text = config.read_text().replace("archive: archive,", f"archive: {root / 'archive'},")
    config.write_text(text.replace("source: tv,", f"source: {root / 'tv'},"))
    return config


def test_two_agents_on_one_database_run_side_by_side_one_plans_and_each_file_is_encoded_once(
    tmp_path: Path, agents: StartAgent, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    for folder in ("shared", "nas-1", "desktop"):
        (tmp_path / folder).mkdir()
    shared = tmp_path / "shared"
    write_config(shared)  # the shared tv and archive folders
    for number in range(3):
        make_clip(shared / "tv" / "Show" / f"E0{number}.mkv", seconds=1)
    sources = checksums(shared / "tv")
    agents = {
        host: agents(on_postgres(sharing(write_config(tmp_path / host), root=shared), url=postgres_url, host=host))
        for host in ("nas-1", "desktop")
    }

    wait_for(
        lambda: sorted(published(shared)) == [f"TV/Show/E0{number}.mkv" for number in range(3)],
        what="every output published",
        deadline=180,
    )
    wait_for(
        lambda: rows(postgres_url, "SELECT state, count(*) FROM jobs GROUP BY state") == [("done", 3)],
        what="every job done",
    )
    hosts = rows(postgres_url, "SELECT name FROM hosts ORDER BY name")
    leaders = [host for host, agent in agents.items() if agent.events("leadership taken: this host plans")]
    stops = {host: agent.stop() for host, agent in agents.items()}

    assert stops == {"nas-1": 0, "desktop": 0}
    assert hosts == [("desktop",), ("nas-1",)]
    assert len(leaders) == 1  # one planner; the other followed
    assert len(rows(postgres_url, "SELECT DISTINCT rel_path FROM ledger")) == 3
    started = [event for agent in agents.values() for event in agent.events("job started")]
    assert len(started) == 3  # no file encoded twice
    assert archive_files(shared) == [f"TV/Show/E0{number}.mkv" for number in range(3)]
    assert checksums(shared / "tv") == sources
    for agent in agents.values():
        assert postgres_cluster.password not in agent.log_path.read_text()
