"""`hb2r hosts`, `hb2r jobs` showing each job's host, and the refusal of a newer store schema, as
real processes against a PostgreSQL store on the throwaway cluster (and SQLite where said)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from agent.store.hosts import HostReport
from agent.store.postgres_schema import SCHEMA_VERSION
from agent.store.postgres_store import open_postgres_store
from tests.support.cli import hb2r
from tests.support.postgres import PostgresCluster

REPO = Path(__file__).resolve().parents[2]


def write_config(root: Path, *, url: str = "sqlite") -> Path:
    for folder in ("archive", "tv"):
        (root / folder).mkdir(exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n  - {name: tv, source: tv, output: TV, preset: tv}\n"
        "presets:\n  tv: {handbrake: Fast 1080p30}\n"
        f"host: {{name: nas-1}}\nstore:\n  url: {url}\n"
    )
    return config


def test_hosts_lists_every_host_with_versions_libraries_last_seen_running_and_the_leader(
    tmp_path: Path, postgres_url: str
) -> None:
    store = open_postgres_store(postgres_url)
    store.report_host(HostReport("nas-1", "1.4.0", "1.6.1", ("movies", "tv"), 2))
    store.report_host(HostReport("desktop", "1.4.0", None, (), 0))
    store.database.execute("UPDATE hosts SET last_seen = '2024-05-01T12:00:00.000000+00:00' WHERE name = 'desktop'")
    store.take_or_renew_leadership("nas-1", lease=timedelta(seconds=30))
    store.close()

    finished = hb2r("hosts", str(write_config(tmp_path, url=postgres_url)))

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "HANDBRAKE", "LIBRARIES", "LAST", "SEEN", "RUNNING"]
    desktop, nas = lines[1].split(), lines[2].split()
    assert desktop[:4] == ["desktop", "1.4.0", "-", "-"] and desktop[-1] == "0"
    assert "2024-05-01 12:00:00 UTC" in lines[1] and "(late)" in lines[1]
    assert nas[:4] == ["nas-1*", "1.4.0", "1.6.1", "movies,tv"] and nas[-1] == "2"
    assert "s ago" in lines[2] and "(late)" not in lines[2]
    assert lines[3:] == ["2 hosts; * leads the planning (epoch 1); 1 not seen for 3 leases (90 s): desktop"]


def test_hosts_on_a_store_with_no_state_says_so_and_makes_nothing(tmp_path: Path) -> None:
    finished = hb2r("hosts", str(write_config(tmp_path)))

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("No hosts: there is no state database at ")
    assert not (tmp_path / "state").exists()


def test_jobs_show_the_host_running_each_claimed_job(tmp_path: Path, postgres_url: str) -> None:
    store = open_postgres_store(postgres_url)
    for name in ("a.mkv", "b.mkv"):
        store.enqueue(
            library="tv", rel_path=name, fingerprint=f"1:{name}", preset_hash="p", output_path=f"TV/{name}",
            reason="new", now=datetime.now(UTC),
        )  # fmt: skip
    store.claim("desktop", libraries=["tv"], lease=timedelta(seconds=30), library_order=["tv"])
    store.close()

    finished = hb2r("jobs", str(write_config(tmp_path, url=postgres_url)))

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "STATE", "HOST"]
    assert lines[1].split()[:3] == ["1", "running", "desktop"]
    assert lines[2].split()[:4] == ["2", "queued", "0", "tv"]  # no host: its cell is empty


def test_run_refuses_a_postgresql_store_schema_newer_than_it_knows_and_says_so(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    open_postgres_store(postgres_url).close()  # this hb2r's schema
    with psycopg.connect(postgres_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES (%s, '2030-01-01T00:00:00+00:00')",
            (SCHEMA_VERSION + 1,),
        )

    finished = hb2r("run", str(write_config(tmp_path, url=postgres_url)))

    assert finished.returncode == 1
    assert f"store schema {SCHEMA_VERSION + 1} is newer than this hb2r knows ({SCHEMA_VERSION})" in finished.stderr
    assert postgres_cluster.password not in finished.stderr + finished.stdout
