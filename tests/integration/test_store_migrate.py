"""`hb2r store migrate`: the SQLite state copied into an empty PostgreSQL database, and what it refuses.

Real SQLite states filled by the real store functions (jobs done with their ledger rows, dead,
queued, running and cancelled; users, scan memory, holds, agent status, ended tokens), a real
PostgreSQL from the throwaway cluster, `hb2r store migrate` run as the command line runs it.
Afterwards `hb2r plan`'s writer, reading the PostgreSQL store, must plan
no transcode for what was done; the SQLite file must be byte for byte what it was.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.config import load_config
from agent.config.models import Config
from agent.domain import LedgerEntry, SourceFile, UserChange, UserChangeKind
from agent.handbrake.probe import handbrake_version
from agent.identity import output_path, preset_identity
from agent.plan_command import PlanWriter
from agent.scan import fingerprint
from agent.store.database_store import DatabaseStore
from agent.store.db import MIGRATIONS, SCHEMA_VERSION, database_path
from agent.store.hosts import HostReport
from agent.store.jobs import CancelledBy
from agent.store.lock import agent_lock
from agent.store.postgres import connect_postgres
from agent.store.postgres_schema import migrate as migrate_postgres
from agent.store.postgres_schema import schema_version
from agent.store.sqlite import open_store
from tests.support.cli import hb2r
from tests.support.plan_cli import write_config
from tests.support.postgres import PostgresCluster

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STAMP = T0.isoformat()
TABLES = (
    "agent_status",
    "hosts",
    "jobs",
    "leader",
    "ledger",
    "library_holds",
    "library_scans",
    "revoked_tokens",
    "seen_files",
    "users",
)
JOB_FILES = {
    "done": ("Show/S01E01.mkv", "Show/S01E02.mkv"),
    "queued": ("Show/S01E03.mkv",),
    "running": ("Show/S01E04.mkv",),
    "dead": ("Show/S01E05.mkv",),
    "cancelled": ("Show/S01E06.mkv",),
}


@dataclass(frozen=True)
class Legacy:
    """A SQLite state as a one-host agent leaves it."""

    config_path: Path
    config: Config
    database: Path
    job_ids: dict[str, list[int]]


def make_sources(config: Config) -> None:
    library = config.libraries[0]
    for number, rel_path in enumerate(path for paths in JOB_FILES.values() for path in paths):
        source = library.source / rel_path
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(f"episode {number}\n".encode() * 4096)  # the planner reads bytes, not video


def fill_state(config: Config) -> dict[str, list[int]]:
    """Give each file of JOB_FILES a job in that state, the done ones their ledger rows and outputs."""
    library = config.libraries[0]
    preset = config.preset_for(library)
    preset_hash = preset_identity(
        preset, import_file_content=None, handbrake_version=handbrake_version(config.handbrake.binary)
    )
    store = open_store(config.paths.state_dir)
    job_ids: dict[str, list[int]] = {}
    try:
        seen = []
        for state, rel_paths in JOB_FILES.items():
            for rel_path in rel_paths:
                source = library.source / rel_path
                info = source.stat()
                content = fingerprint(source, size=info.st_size)
                output = output_path(library, preset, rel_path)
                seen.append(SourceFile(rel_path, info.st_size, info.st_mtime_ns, info.st_ctime_ns, content))
                job = store.enqueue(
                    library=library.name,
                    rel_path=rel_path,
                    fingerprint=content,
                    preset_hash=preset_hash,
                    output_path=output,
                    reason="new",
                    now=T0,
                )
                assert job is not None
                job_ids.setdefault(state, []).append(job.id)
                if state in ("done", "running", "dead"):
                    store.mark_running(job.id, now=T0)
                if state == "running":
                    store.record_progress(job.id, progress=42.5, now=T0)
                if state == "dead":
                    store.mark_failed_permanently(job.id, error="no title found", stderr_tail=["[error]"], now=T0)
                if state == "cancelled":
                    store.cancel(job.id, now=T0, by=CancelledBy.OPERATOR)
                if state == "done":
                    entry = LedgerEntry(
                        library.name, rel_path, content, info.st_size, info.st_mtime_ns, preset_hash, output
                    )
                    with store.transaction():
                        store.record_output(entry, encoded_at=STAMP, output_size=7)
                        store.mark_done(job.id, now=T0)
                    target = config.paths.archive / output
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(b"encoded")
        store.record_scan(library=library.name, files=seen, previous={}, now_ns=1, scanned_at=STAMP)
        for user in config.users:
            store.apply_user_change(UserChange(UserChangeKind.ADD, user.name, user.role, user.password_hash), now=STAMP)
        store.hold("movies", reason="operator", since=STAMP)
        store.set_gate(reasons=("cpu 95% >= 80%",), now=T0)
        store.report_host(HostReport("nas-1", "1.4.0", "1.6.1", (library.name,), 0))
        store.take_or_renew_leadership("nas-1", lease=timedelta(seconds=30))  # epochs go on from it
        store.revoke_token("token-1", expires_at="2999-01-01T00:00:00+00:00", now=STAMP)
    finally:
        store.close()
    return job_ids


@pytest.fixture
def legacy(tmp_path: Path) -> Legacy:
    config_path = write_config(tmp_path, libraries=["tv"], with_users=True)
    config = load_config(config_path).config
    make_sources(config)
    job_ids = fill_state(config)
    database = database_path(config.paths.state_dir)
    assert not Path(f"{database}-wal").exists()  # a stopped agent leaves one file
    return Legacy(config_path, config, database, job_ids)


@pytest.fixture
def target(postgres_url: str) -> Iterator[DatabaseStore]:
    store = DatabaseStore(connect_postgres(postgres_url))
    yield store
    store.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sqlite_rows(database: Path, table: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as connection:
        columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
        rows = connection.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()  # noqa: S608 (TABLES)
    connection.close()
    return sorted(rows, key=repr)


def postgres_rows(store: DatabaseStore, table: str, columns: list[str]) -> list[tuple[Any, ...]]:
    query = f"SELECT {', '.join(columns)} FROM {table}"  # noqa: S608 (names from TABLES and SQLite's catalog)
    return sorted(store.database.execute(query).fetchall(), key=repr)


def sqlite_columns(database: Path, table: str) -> list[str]:
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True) as connection:
        columns = [str(row[1]) for row in connection.execute(f"PRAGMA table_info({table})")]
    connection.close()
    return columns


def dump(store: DatabaseStore, legacy: Legacy) -> dict[str, list[tuple[Any, ...]]]:
    return {table: postgres_rows(store, table, sqlite_columns(legacy.database, table)) for table in TABLES}


def hb2r_store_migrate(*arguments: str, config: Path) -> tuple[int, str]:
    """Run `hb2r store migrate` in this process; return its exit code and everything it printed."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["store", "migrate", *arguments, str(config)])
    return code, out.getvalue() + err.getvalue()


def test_migrate_copies_every_row_and_the_planner_on_postgres_plans_nothing_for_what_was_done(
    legacy: Legacy, target: DatabaseStore, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    before = digest(legacy.database)
    expected = {table: sqlite_rows(legacy.database, table) for table in TABLES}

    environment = {key: value for key, value in os.environ.items() if not key.startswith(("HB2R_", "PG"))}
    finished = hb2r("store", "migrate", "--to", postgres_url, str(legacy.config_path), environment=environment)

    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, output
    assert postgres_cluster.password not in output
    lines = finished.stdout.splitlines()
    assert "  jobs: 6 rows (1 running job put back in the queue)" in lines
    assert "  ledger: 2 rows" in lines
    assert "  users: 1 row" in lines
    assert "  seen_files: 6 rows" in lines
    plain_url = postgres_url.replace(f":{postgres_cluster.password}@", "@")
    assert any(f"set store.url to {plain_url}" in line and "start the agent" in line for line in lines), output
    assert digest(legacy.database) == before  # going back is pointing store.url at this file

    assert schema_version(target.database) == SCHEMA_VERSION
    copied = dump(target, legacy)
    for table in TABLES:
        if table != "jobs":
            assert copied[table] == expected[table], table
    columns = sqlite_columns(legacy.database, "jobs")
    was_running = legacy.job_ids["running"][0]
    moved = {"state", "progress", "not_before", "updated_at", "change_seq"}
    assert [row for row in copied["jobs"] if row[0] != was_running] == [
        row for row in expected["jobs"] if row[0] != was_running
    ]
    old = dict(zip(columns, next(row for row in expected["jobs"] if row[0] == was_running), strict=True))
    new = dict(zip(columns, next(row for row in copied["jobs"] if row[0] == was_running), strict=True))
    assert (old["state"], new["state"], new["progress"]) == ("running", "queued", None)
    assert {key: value for key, value in new.items() if key not in moved} == {
        key: value for key, value in old.items() if key not in moved
    }
    assert new["change_seq"] > max(row[columns.index("change_seq")] for row in expected["jobs"])

    # New rows get ids and change numbers past the copied ones.
    last_change = target.last_change()
    job = target.enqueue(
        library="tv", rel_path="Show/S02E01.mkv", fingerprint="f", preset_hash="p",
        output_path="TV/Show/S02E01.mkv", reason="new", now=T0,
    )  # fmt: skip
    assert job is not None
    assert job.id > max(id for ids in legacy.job_ids.values() for id in ids)
    assert target.last_change() > last_change
    target.record_output(LedgerEntry("tv", "Show/S02E01.mkv", "f", 1, 1, "p", "TV/Show/S02E01.mkv"), encoded_at=STAMP)
    ledger_ids = [row[0] for row in target.database.execute("SELECT id FROM ledger ORDER BY id").fetchall()]
    assert ledger_ids[-1] > max(row[0] for row in expected["ledger"])
    target.forget(library="tv", rel_path="Show/S02E01.mkv")
    target.cancel(job.id, now=T0)

    # The plan, from the PostgreSQL store, as `hb2r plan --json` writes it.
    out = io.StringIO()
    now_ns = time.time_ns()  # as `hb2r plan`: the files were written just now
    PlanWriter(legacy.config, target, as_json=True, watch={}, out=out, now_ns=now_ns, warn=lambda message: None).write()
    planned = json.loads(out.getvalue())
    transcodes = {
        action["path"]: action["job"]["state"] if action["job"] else None
        for action in planned["actions"]
        if action["kind"] == "transcode"
    }
    assert set(transcodes) == {JOB_FILES[state][0] for state in ("queued", "running", "dead", "cancelled")}
    assert None not in transcodes.values()  # each is shown with its job
    summary = planned["summary"]
    assert (summary["queued"], summary["dead"], summary["cancelled"]) == (2, 1, 1)
    assert summary["transcode"] == 0  # nothing for the done files, nothing new to queue


def test_a_second_migrate_into_the_same_database_is_refused_and_changes_nothing(
    legacy: Legacy, target: DatabaseStore, postgres_url: str
) -> None:
    assert hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)[0] == 0
    before = dump(target, legacy)
    versions = target.database.execute("SELECT version, applied_at FROM schema_version").fetchall()

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 1
    assert "already holds hb2r data" in output
    assert "jobs: 6 rows" in output
    assert "nothing was changed" in output
    assert dump(target, legacy) == before
    assert target.database.execute("SELECT version, applied_at FROM schema_version").fetchall() == versions


def test_a_row_postgresql_refuses_mid_copy_leaves_the_target_empty(
    legacy: Legacy, target: DatabaseStore, postgres_url: str
) -> None:
    with sqlite3.connect(legacy.database) as connection:  # a row SQLite took without its check
        connection.execute("PRAGMA ignore_check_constraints = ON")
        connection.execute(
            "INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES ('eve', 'root', 'x', ?, ?)",
            (STAMP, STAMP),
        )
    connection.close()
    before = digest(legacy.database)

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 1
    assert "users" in output and "users_role_check" in output, output
    assert "nothing was written" in output
    assert schema_version(target.database) == 0
    tables = target.database.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
    ).fetchone()
    assert tables == (0,)
    assert digest(legacy.database) == before


def test_rows_lost_on_the_way_fail_the_count_check_and_nothing_is_kept(
    legacy: Legacy, target: DatabaseStore, postgres_url: str
) -> None:
    migrate_postgres(target.database)  # an empty store, already migrated: accepted
    # A rule in the target that drops rows silently: only the count check can notice.
    target.database.execute("CREATE RULE drop_holds AS ON INSERT TO library_holds DO INSTEAD NOTHING")

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 1
    assert "library_holds: 1 row in SQLite, 0 in PostgreSQL" in output, output
    assert all(target.database.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,) for table in TABLES)  # noqa: S608


def test_an_empty_target_already_at_this_schema_is_accepted(
    legacy: Legacy, target: DatabaseStore, postgres_url: str
) -> None:
    migrate_postgres(target.database)  # e.g. made by the playbooks

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 0, output
    assert len(target.list_jobs()) == 6


@pytest.mark.parametrize("version", [4, SCHEMA_VERSION + 1], ids=["older", "newer"])
def test_a_target_at_another_schema_version_is_refused(
    legacy: Legacy, target: DatabaseStore, postgres_url: str, version: int
) -> None:
    from agent.store.postgres_schema import MIGRATIONS as POSTGRES_MIGRATIONS

    migrate_postgres(target.database, migrations=POSTGRES_MIGRATIONS[: min(version, SCHEMA_VERSION)])
    if version > SCHEMA_VERSION:
        target.database.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (version, STAMP))

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 1
    assert f"schema version {version}" in output, output
    assert "nothing was changed" in output
    assert schema_version(target.database) == version


def test_the_agent_running_refuses_the_migrate(legacy: Legacy, target: DatabaseStore, postgres_url: str) -> None:
    with agent_lock(legacy.config.paths.state_dir, purpose="run"):
        code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 1
    assert f"an hb2r agent (pid {os.getpid()}) is running" in output, output
    assert "stop it first" in output
    assert schema_version(target.database) == 0


def test_an_older_sqlite_state_is_migrated_in_memory_and_left_as_it_was(
    tmp_path: Path, target: DatabaseStore, postgres_url: str
) -> None:
    config_path = write_config(tmp_path, libraries=["tv"])
    state_dir = load_config(config_path).config.paths.state_dir
    state_dir.mkdir(mode=0o700)
    database = database_path(state_dir)
    with sqlite3.connect(database) as connection:
        for number, script in enumerate(MIGRATIONS[:4], start=1):
            connection.executescript(f"{script}\nPRAGMA user_version = {number};")
        connection.execute(
            "INSERT INTO ledger (library, rel_path, fingerprint, size, mtime_ns, preset_hash, output_path, encoded_at)"
            " VALUES ('tv', 'a.mkv', 'f', 1, 2, 'p', 'TV/a.mkv', ?)",
            (STAMP,),
        )
    connection.close()
    before = digest(database)

    code, output = hb2r_store_migrate("--to", postgres_url, config=config_path)

    assert code == 0, output
    assert digest(database) == before
    assert target.database.execute("SELECT rel_path, origin, output_size FROM ledger").fetchall() == [
        ("a.mkv", "encoded", None)
    ]


def test_a_sqlite_state_newer_than_this_hb2r_is_refused(
    legacy: Legacy, target: DatabaseStore, postgres_url: str
) -> None:
    with sqlite3.connect(legacy.database) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 1
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this hb2r knows" in output, output
    assert schema_version(target.database) == 0


def test_tables_the_two_schemas_do_not_share_are_refused(
    legacy: Legacy, target: DatabaseStore, postgres_url: str
) -> None:
    with sqlite3.connect(legacy.database) as connection:
        connection.execute("CREATE TABLE plugin_notes (note TEXT)")
    connection.close()

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 1
    assert "only in SQLite: plugin_notes" in output, output
    assert schema_version(target.database) == 0


def test_without_to_the_configs_postgresql_store_url_is_the_target(
    legacy: Legacy, target: DatabaseStore, postgres_cluster: PostgresCluster, postgres_url: str, tmp_path: Path
) -> None:
    password_file = tmp_path / "pg.password"
    password_file.write_text(postgres_cluster.password + "\n")
    password_file.chmod(0o600)
    plain_url = postgres_url.replace(f":{postgres_cluster.password}@", "@")
    text = legacy.config_path.read_text()
    config = tmp_path / "postgres.yaml"
    config.write_text(
        text.rstrip().removesuffix("}") + f', "store": {{"url": "{plain_url}", "password_file": "{password_file}"}}}}\n'
    )

    code, output = hb2r_store_migrate(config=config)

    assert code == 0, output
    assert len(target.list_jobs()) == 6


@pytest.mark.parametrize(
    "case",
    ["wrong password", "unreachable", "sqlite target", "sqlite store url", "no state folder", "no database yet"],
)
def test_bad_inputs_are_refused_with_a_clear_message(
    case: str, tmp_path: Path, postgres_cluster: PostgresCluster, postgres_url: str
) -> None:
    config_path = write_config(tmp_path, libraries=["tv"])
    state_dir = load_config(config_path).config.paths.state_dir
    if case != "no state folder":
        state_dir.mkdir(mode=0o700)
    if case not in ("no state folder", "no database yet"):
        open_store(state_dir).close()
    database = postgres_url.rsplit("/", 1)[1]
    url, expected = {
        "wrong password": (
            postgres_cluster.url(database, password="not-the-password"),
            "password authentication failed",
        ),
        "unreachable": ("postgresql://hb2r:s3cr3t-pw@127.0.0.1:9/hb2r", "cannot connect to PostgreSQL at 127.0.0.1:9"),
        "sqlite target": ("sqlite", "--to must be a postgresql:// URL"),
        "sqlite store url": (None, "give --to postgresql://"),
        "no state folder": (postgres_url, "nothing to migrate"),
        "no database yet": (postgres_url, "nothing to migrate"),
    }[case]

    code, output = hb2r_store_migrate(*(["--to", url] if url else []), config=config_path)

    assert code == 1
    assert expected in output, output
    assert "error: " in output
    assert "Traceback" not in output
    for secret in (postgres_cluster.password, "not-the-password", "s3cr3t-pw"):
        assert secret not in output
    if case == "no state folder":
        assert not state_dir.exists()  # nothing is made to say there is nothing
    if case == "no database yet":
        assert not database_path(state_dir).exists()


# Commits one more job into the state and dies without closing it, as an agent killed by SIGKILL:
# the commit is only in hb2r.db-wal, beside hb2r.db-shm.
KILLED_WRITER = """
import os, sys
from datetime import UTC, datetime
from pathlib import Path
from agent.store.sqlite import open_store
store = open_store(Path(sys.argv[1]))
store.enqueue(library="tv", rel_path="Show/late.mkv", fingerprint="f", preset_hash="p",
              output_path="TV/Show/late.mkv", reason="new", now=datetime(2024, 5, 1, tzinfo=UTC))
os._exit(0)
"""


def test_what_a_killed_agent_left_in_the_wal_is_copied(
    legacy: Legacy, target: DatabaseStore, postgres_url: str
) -> None:
    subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(legacy.config.paths.state_dir)], cwd=REPO, check=True, timeout=60
    )
    assert Path(f"{legacy.database}-wal").stat().st_size > 0
    before = digest(legacy.database)

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 0, output
    assert "Show/late.mkv" in {job.rel_path for job in target.list_jobs()}
    assert digest(legacy.database) == before


def test_fencing_tokens_go_on_growing_on_postgresql_after_the_copy(
    legacy: Legacy, target: DatabaseStore, postgres_url: str
) -> None:
    store = open_store(legacy.config.paths.state_dir)
    try:
        tokens = []
        for _ in range(2):  # a SQLite agent that claimed (leases work there too) and released
            claim = store.claim("alpha", libraries=["tv"], lease=timedelta(minutes=5), library_order=["tv"])
            assert claim is not None
            tokens.append(claim.token)
            store.release_claim(claim.job.id, claim.token, reason="test")
    finally:
        store.close()

    code, output = hb2r_store_migrate("--to", postgres_url, config=legacy.config_path)

    assert code == 0, output
    claim = target.claim("beta", libraries=["tv"], lease=timedelta(minutes=5), library_order=["tv"])
    assert claim is not None and claim.token > max(tokens)


def test_without_the_postgresql_driver_the_migrate_says_which_extra_to_install(
    legacy: Legacy, postgres_url: str
) -> None:
    # psycopg cannot be uninstalled for one test: it is hidden from the import system instead.
    script = (
        "import sys; sys.modules['psycopg'] = None; from agent.cli import main;"
        f" sys.exit(main(['store', 'migrate', '--to', {postgres_url!r}, {str(legacy.config_path)!r}]))"
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=60, check=False
    )

    assert finished.returncode == 1
    assert "install hb2r with its postgres extra (pip install 'hb2r[postgres]')" in finished.stderr
    assert "Traceback" not in finished.stderr
