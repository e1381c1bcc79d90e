"""`hb2r backup` and `hb2r restore` on a PostgreSQL store, as real processes with Debian's pg_dump and
pg_restore against the throwaway cluster: the state comes back whole, into an empty database only,
and the password never reaches a command line."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from agent.domain import LedgerEntry
from agent.store.postgres_dump import dump_command, restore_command
from agent.store.postgres_schema import SCHEMA_VERSION
from agent.store.postgres_store import open_postgres_store
from tests.support.cli import hb2r
from tests.support.postgres import PostgresCluster

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def write_config(root: Path, *, url: str) -> Path:
    for folder in ("archive", "tv"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        "version: 1\npaths: {archive: archive, state_dir: state}\n"
        "libraries:\n  - {name: tv, source: tv, output: TV, preset: tv}\n"
        f"presets:\n  tv: {{handbrake: Fast 1080p30}}\nstore:\n  url: {url}\n"
    )
    return config


def fill(url: str) -> None:
    store = open_postgres_store(url)
    try:
        for name in ("a.mkv", "b.mkv"):
            store.enqueue(
                library="tv", rel_path=name, fingerprint=f"1:{name}", preset_hash="p", output_path=f"TV/{name}",
                reason="new", now=T0,
            )  # fmt: skip
        store.record_output(LedgerEntry("tv", "a.mkv", "1:a.mkv", 10, 1, "p", "TV/a.mkv"), encoded_at=T0.isoformat())
    finally:
        store.close()


def contents(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with psycopg.connect(url) as connection:
        jobs = connection.execute("SELECT id, rel_path, state, change_seq FROM jobs ORDER BY id").fetchall()
        ledger = connection.execute("SELECT library, rel_path, output_path FROM ledger").fetchall()
    return jobs, ledger


def test_a_backup_restored_into_an_empty_database_is_the_same_state_and_the_agent_can_go_on(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    fill(postgres_url)
    backup_file = tmp_path / "hb2r.dump"
    backup = hb2r("backup", "--to", str(backup_file), str(write_config(tmp_path / "a", url=postgres_url)))
    assert backup.returncode == 0, backup.stderr
    assert backup.stdout.startswith(f"Wrote {backup_file}: ")
    assert "a pg_dump archive (custom format) of the PostgreSQL store 127.0.0.1:" in backup.stdout
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600

    name = f"restored_{tmp_path.name[-20:]}".lower().replace("-", "_")
    empty = postgres_cluster.create_database(name)
    try:
        restore = hb2r("restore", "--from", str(backup_file), str(write_config(tmp_path / "b", url=empty)))

        assert restore.returncode == 0, restore.stderr
        assert restore.stdout.splitlines()[0] == (
            f"Restored {backup_file} into the PostgreSQL store 127.0.0.1:{postgres_cluster.port}/{name}: "
            f"schema version {SCHEMA_VERSION}, 2 jobs, 1 ledger entry, 0 users."
        )
        assert contents(empty) == contents(postgres_url)
        store = open_postgres_store(empty)  # ids and change numbers go on from where they were
        try:
            job = store.enqueue(
                library="tv", rel_path="c.mkv", fingerprint="1:c", preset_hash="p", output_path="TV/c.mkv",
                reason="new", now=T0,
            )  # fmt: skip
            assert job is not None and job.id == 3
            assert store.last_change() > max(row[3] for row in contents(postgres_url)[0])  # type: ignore[type-var]
        finally:
            store.close()
    finally:
        postgres_cluster.drop_database(name)


def test_a_restore_into_a_database_that_holds_a_state_is_refused_and_changes_nothing(
    tmp_path: Path, postgres_url: str
) -> None:
    fill(postgres_url)
    config = write_config(tmp_path, url=postgres_url)
    backup_file = tmp_path / "hb2r.dump"
    assert hb2r("backup", "--to", str(backup_file), str(config)).returncode == 0
    before = contents(postgres_url)

    restore = hb2r("restore", "--from", str(backup_file), str(config))

    assert restore.returncode == 1
    assert "is not empty (" in restore.stderr and "restore into an empty database" in restore.stderr
    assert restore.stderr.endswith("; nothing was restored\n")
    assert contents(postgres_url) == before


def test_a_backup_does_not_replace_a_file_without_force_nor_restore_a_file_that_is_no_dump(
    tmp_path: Path, postgres_url: str
) -> None:
    config = write_config(tmp_path, url=postgres_url)
    existing = tmp_path / "existing"
    existing.write_text("keep me")

    backup = hb2r("backup", "--to", str(existing), str(config))
    restore = hb2r("restore", "--from", str(existing), str(config))

    assert backup.returncode == 1 and f"{existing} exists; give --force to replace it" in backup.stderr
    assert existing.read_text() == "keep me"
    assert restore.returncode == 1
    assert f"{existing} is not a pg_dump archive" in restore.stderr


def test_the_password_goes_to_pg_dump_and_pg_restore_in_their_environment_never_their_argv(tmp_path: Path) -> None:
    url = "postgresql://hb2r:Secret-In-Url@db.lan:5433/media?sslmode=require"
    for call in (
        dump_command(url, password=None, target=tmp_path / "x"),
        restore_command(url, password="From-The-File", source=tmp_path / "x"),
    ):
        assert not any("Secret-In-Url" in part or "From-The-File" in part for part in call.argv)
        assert any("host=db.lan" in part and "port=5433" in part and "dbname=media" in part for part in call.argv)
    assert dump_command(url, password=None, target=tmp_path / "x").env["PGPASSWORD"] == "Secret-In-Url"
    assert restore_command(url, password="From-The-File", source=tmp_path / "x").env["PGPASSWORD"] == "From-The-File"
