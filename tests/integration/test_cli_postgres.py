"""The commands that open the state (`plan`, `jobs`, `retry`, `run`) on a PostgreSQL store, as
real processes against the throwaway cluster: what an operator sees, and what they may not
see (a password), when the store is there, empty, unreachable or refuses them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from agent.config.models import Retry
from agent.store.postgres_store import open_postgres_store
from tests.support.cli import hb2r
from tests.support.ports import free_port
from tests.support.postgres import PostgresCluster

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RETRY = Retry(attempts=1, backoff=timedelta(seconds=30), max_backoff=timedelta(hours=1))


def write_config(root: Path, *, url: str, password_file: Path | None = None) -> Path:
    for folder in ("archive", "tv"):
        (root / folder).mkdir(exist_ok=True)
    config = root / "config.yaml"
    store = f"store:\n  url: {url}\n" + (f"  password_file: {password_file}\n" if password_file else "")
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n  - {name: tv, source: tv, output: TV, preset: tv}\n"
        "presets:\n  tv: {handbrake: Fast 1080p30}\n"
        "host: {name: nas-1}\n" + store
    )
    return config


def without_password(url: str, cluster: PostgresCluster) -> str:
    return url.replace(f":{cluster.password}@", "@")


def password_file(folder: Path, password: str, *, mode: int = 0o600) -> Path:
    path = folder / "store.password"
    path.write_text(password + "\n")
    path.chmod(mode)
    return path


def public_tables(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    assert row is not None
    return int(row[0])


def test_plan_and_jobs_on_an_empty_database_write_nothing(tmp_path: Path, postgres_url: str) -> None:
    config = write_config(tmp_path, url=postgres_url)

    plan = hb2r("plan", str(config))
    jobs = hb2r("jobs", str(config))

    assert plan.returncode == 0, plan.stderr
    assert jobs.returncode == 0, jobs.stderr
    assert jobs.stdout.startswith("No jobs: the PostgreSQL store 127.0.0.1:")
    assert public_tables(postgres_url) == 0  # not even migrated
    assert not (tmp_path / "state").exists()  # and no SQLite state made beside it


def test_jobs_and_retry_read_and_change_the_postgresql_queue(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    store = open_postgres_store(postgres_url)
    job = store.enqueue(
        library="tv", rel_path="a.mkv", fingerprint="1:a", preset_hash="p", output_path="TV/a.mkv",
        reason="new", now=T0,
    )  # fmt: skip
    assert job is not None
    store.mark_running(job.id, now=T0)
    store.mark_failed(job.id, error="HandBrakeCLI exited with 3", stderr_tail=[], retry=RETRY, now=T0)
    store.close()
    config = write_config(
        tmp_path,
        url=without_password(postgres_url, postgres_cluster),
        password_file=password_file(tmp_path, postgres_cluster.password),
    )

    listed = hb2r("jobs", "--json", str(config))
    retried = hb2r("retry", "--dead", str(config))
    after = hb2r("jobs", "--state", "queued", "--json", str(config))

    assert listed.returncode == 0, listed.stderr
    assert [(job["rel_path"], job["state"]) for job in json.loads(listed.stdout)["jobs"]] == [("a.mkv", "dead")]
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.startswith(f"Requeued job {job.id} (tv: a.mkv), was dead: HandBrakeCLI exited with 3")
    assert [row["rel_path"] for row in json.loads(after.stdout)["jobs"]] == ["a.mkv"]


def test_an_unreachable_store_is_one_line_naming_it_and_exit_1(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_config(tmp_path, url=f"postgresql://hb2r:Hidden-Secret-1@127.0.0.1:{port}/media")

    for command in ("plan", "jobs", "run"):
        finished = hb2r(command, str(config))

        assert finished.returncode == 1, (command, finished.stdout, finished.stderr)
        lines = finished.stderr.splitlines()
        assert len(lines) == 1, (command, finished.stderr)
        assert lines[0].startswith(f"error: cannot connect to PostgreSQL at 127.0.0.1:{port}/media as user hb2r: ")
        assert "Hidden-Secret-1" not in finished.stderr + finished.stdout


def test_a_wrong_password_is_named_without_the_password(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    wrong = postgres_url.replace(postgres_cluster.password, "Wrong-Secret-2")
    config = write_config(tmp_path, url=wrong)

    finished = hb2r("plan", str(config))

    assert finished.returncode == 1
    assert "password authentication failed for user" in finished.stderr
    assert f"127.0.0.1:{postgres_cluster.port}/" in finished.stderr
    assert "Wrong-Secret-2" not in finished.stderr + finished.stdout


@pytest.mark.parametrize("command", ["plan", "run"])
def test_a_password_file_others_may_read_is_refused_before_anything_is_done(
    tmp_path: Path, postgres_url: str, postgres_cluster: PostgresCluster, command: str
) -> None:
    secret = password_file(tmp_path, postgres_cluster.password, mode=0o644)
    config = write_config(tmp_path, url=without_password(postgres_url, postgres_cluster), password_file=secret)

    finished = hb2r(command, str(config))

    assert finished.returncode == 1
    database = postgres_url.rsplit("/", 1)[1]
    assert finished.stderr == (
        f"error: PostgreSQL store 127.0.0.1:{postgres_cluster.port}/{database}: the PostgreSQL password file "
        f"{secret} may be read by its group and others (mode 0644): chmod 600 {secret}\n"
    )
    assert public_tables(postgres_url) == 0


def test_without_the_postgres_extra_the_message_says_how_to_get_it(tmp_path: Path, postgres_url: str) -> None:
    config = write_config(tmp_path, url=postgres_url)
    # psycopg cannot be uninstalled for one test: a module path entry that makes its import fail stands in.
    blocker = tmp_path / "blocker"
    (blocker / "psycopg").mkdir(parents=True)
    (blocker / "psycopg" / "__init__.py").write_text("raise ImportError('No module named psycopg')\n")

    finished = subprocess.run(
        [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from agent.cli import main; "
         "raise SystemExit(main(['jobs', sys.argv[2]]))", str(blocker), str(config)],
        cwd=REPO, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip

    assert finished.returncode == 1
    assert "install hb2r with the postgres extra (pip install 'hb2r[postgres]')" in finished.stderr


def test_retry_on_an_empty_database_says_there_is_nothing_and_makes_no_schema(
    tmp_path: Path, postgres_url: str
) -> None:
    config = write_config(tmp_path, url=postgres_url)

    dead = hb2r("retry", "--dead", str(config))
    one = hb2r("retry", "3", str(config))

    assert dead.returncode == 0 and dead.stdout == "No dead jobs to retry.\n", dead.stderr
    assert one.returncode == 1
    assert one.stderr.startswith("error: there is no job 3 (the PostgreSQL store 127.0.0.1:")
    assert one.stderr.endswith(" holds no hb2r state yet)\n")
    assert public_tables(postgres_url) == 0
