"""`hb2r backup`, `hb2r restore` and the agent lock, as real processes on a real SQLite database.

A writer in another process keeps committing while backups are taken, to show a backup is
one consistent snapshot; real `hb2r run` agents hold the lock that refuses a restore and a
second agent. Waiting is polling with a deadline, never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.store import jobs
from agent.store.db import MIGRATIONS, SCHEMA_VERSION, open_database
from tests.support.agent_process import AgentProcess, StartAgent
from tests.support.cli import hb2r
from tests.support.configs import write_config
from tests.support.jobs import new_job
from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 60.0
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
BATCH = 10

# Commits BATCH jobs and the running total in agent_status in one transaction, until told to stop.
WRITER = """
import sys
from pathlib import Path
from agent.store.db import open_database, transaction
connection = open_database(Path(sys.argv[1]))
stop = Path(sys.argv[2])
batch = int(sys.argv[3])
total = 0
while not stop.exists():
    with transaction(connection):
        for _ in range(batch):
            total += 1
            connection.execute(
                "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, error,"
                " created_at, updated_at) VALUES ('tv', ?, 'f', 'p', ?, 'new', ?, 't', 't')",
                (f"show/{total}.mkv", f"TV/{total}.mkv", "x" * 2000),
            )
        connection.execute(
            "INSERT OR REPLACE INTO agent_status (key, value, updated_at) VALUES ('total', ?, 't')", (str(total),)
        )
connection.close()
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, stable_after=None, attempts=None, limits={})


@pytest.fixture
def state(config: Path) -> Path:
    return config.parent / "state"


def seed(state_dir: Path, *rel_paths: str) -> None:
    connection = open_database(state_dir)
    try:
        for rel_path in rel_paths:
            jobs.enqueue(connection, **new_job(rel_path))
    finally:
        connection.close()


def backup_of_one_job(config: Path, state: Path, folder: Path) -> Path:
    """Queue a.mkv and back the state up to folder/backup.db with `hb2r backup`; return the backup."""
    seed(state, "a.mkv")
    backup = folder / "backup.db"
    assert hb2r("backup", "--to", str(backup), str(config)).returncode == 0
    return backup


def job_paths(config: Path) -> list[str]:
    finished = hb2r("jobs", "--json", str(config))
    assert finished.returncode == 0, finished.stderr
    return sorted(job["rel_path"] for job in json.loads(finished.stdout)["jobs"])


def checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def query(path: Path, sql: str) -> list[tuple[object, ...]]:
    """Return the rows of one statement, read without writing (as an operator's check would)."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        return list(connection.execute(sql))
    finally:
        connection.close()


@pytest.fixture
def start_agent(config: Path, agents: StartAgent) -> Callable[[], AgentProcess]:
    """Return start() -> `hb2r run` on config, once it holds the state folder's lock."""

    def start() -> AgentProcess:
        agent = agents(config, log_path=config.parent / f"agent-{time.monotonic_ns()}.log")
        lock = config.parent / "state" / "agent.lock"
        wait_for(
            lambda: lock.exists() and lock.read_text().split("\n")[0] == str(agent.pid),
            what="the agent to take its lock",
            agent=agent,
            deadline=DEADLINE,
            interval=0.05,
        )
        return agent

    return start


# --- backup ---------------------------------------------------------------------------


def test_backup_while_a_writer_commits_is_one_consistent_snapshot(config: Path, state: Path, tmp_path: Path) -> None:
    open_database(state).close()
    stop = tmp_path / "stop-writer"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(state), str(stop), str(BATCH)], cwd=REPO)
    try:

        def committed() -> int:
            rows = query(state / "hb2r.db", "SELECT value FROM agent_status WHERE key = 'total'")
            return int(str(rows[0][0])) if rows else 0

        wait_for(lambda: committed() >= 50 * BATCH, what="the writer to commit", deadline=DEADLINE, interval=0.05)
        totals = []
        for number in range(3):
            target = tmp_path / "backups" / f"b{number}.db"
            target.parent.mkdir(exist_ok=True)
            finished = hb2r("backup", "--to", str(target), str(config))
            assert finished.returncode == 0, finished.stderr
            assert writer.poll() is None  # it was writing all along

            assert query(target, "PRAGMA integrity_check") == [("ok",)]
            [(count,)] = query(target, "SELECT count(*) FROM jobs")
            [(total,)] = query(target, "SELECT value FROM agent_status WHERE key = 'total'")
            assert query(target, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
            assert query(target, "PRAGMA journal_mode") == [("delete",)]  # one self-contained file
            assert isinstance(count, int)
            assert count == int(str(total)) and count % BATCH == 0  # no half of a transaction
            totals.append(count)
            assert target.stat().st_mode & 0o777 == 0o600
            assert finished.stdout.strip() == (
                f"Wrote {target}: {finished.stdout.split(': ')[1].split(',')[0]}, schema version {SCHEMA_VERSION}, "
                f"{count} jobs, 0 ledger entries, 0 users."
            )
            assert not list(target.parent.glob(".*.tmp"))  # no temp file left beside it
        wait_for(
            lambda: committed() > totals[-1],
            what="the writer to commit after the last backup",
            deadline=DEADLINE,
            interval=0.05,
        )
    finally:
        stop.touch()
        writer.wait(timeout=30)
    assert writer.returncode == 0
    assert totals == sorted(totals) and totals[0] >= 50 * BATCH


def test_backup_refuses_to_overwrite_unless_forced(config: Path, state: Path, tmp_path: Path) -> None:
    seed(state, "a.mkv")
    target = tmp_path / "backup.db"
    target.write_text("keep me")

    refused = hb2r("backup", "--to", str(target), str(config))

    assert refused.returncode == 1
    assert refused.stderr == f"error: {target} exists; give --force to replace it\n"
    assert target.read_text() == "keep me"

    forced = hb2r("backup", "--to", str(target), "--force", str(config))

    assert forced.returncode == 0, forced.stderr
    assert "1 job," in forced.stdout
    assert target.stat().st_mode & 0o777 == 0o600
    assert query(target, "SELECT rel_path FROM jobs") == [("a.mkv",)]


@pytest.mark.parametrize(
    "target, message",
    [
        ("missing/backup.db", "error: cannot write {target}: folder {folder} does not exist"),
        ("/proc/hb2r-backup.db", "error: cannot write into /proc: "),
        ("state/hb2r.db", "error: {target} is the state database itself; write the backup elsewhere"),
    ],
)
def test_backup_errors(config: Path, state: Path, tmp_path: Path, target: str, message: str) -> None:
    seed(state, "a.mkv")
    before = checksum(state / "hb2r.db")
    path = tmp_path / target

    finished = hb2r("backup", "--to", str(path), "--force", str(config))

    assert finished.returncode == 1
    assert finished.stderr.startswith(message.format(target=path, folder=path.parent))
    assert checksum(state / "hb2r.db") == before


def test_backup_copies_a_database_newer_than_this_hb2r(config: Path, state: Path, tmp_path: Path) -> None:
    seed(state, "a.mkv")  # then a newer hb2r ran, and was rolled back
    connection = sqlite3.connect(state / "hb2r.db", isolation_level=None)
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()

    finished = hb2r("backup", "--to", str(tmp_path / "backup.db"), str(config))

    assert finished.returncode == 0, finished.stderr
    assert f"schema version {SCHEMA_VERSION + 1}, 1 job," in finished.stdout


def test_backup_without_a_database_says_so(config: Path, state: Path, tmp_path: Path) -> None:
    finished = hb2r("backup", "--to", str(tmp_path / "backup.db"), str(config))

    assert finished.returncode == 1
    assert finished.stderr == (f"error: there is no state database at {state / 'hb2r.db'} yet; nothing to back up\n")
    assert not (tmp_path / "backup.db").exists()
    assert not state.exists()  # nothing was made to say so


# --- restore ----------------------------------------------------------------------------


def test_restore_round_trip_brings_the_jobs_back(config: Path, state: Path, tmp_path: Path) -> None:
    seed(state, "a.mkv", "b.mkv")
    backup = tmp_path / "backup.db"
    assert hb2r("backup", "--to", str(backup), str(config)).returncode == 0
    seed(state, "c.mkv", "d.mkv")
    assert job_paths(config) == ["a.mkv", "b.mkv", "c.mkv", "d.mkv"]

    finished = hb2r("restore", "--from", str(backup), str(config))

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines() == [
        f"Restored {backup} into {state / 'hb2r.db'}: schema version {SCHEMA_VERSION}, 2 jobs, 0 ledger entries, "
        "0 users.",
        f"The previous database is kept as {state / 'hb2r.db.before-restore'}.",
        "Start the agent again, e.g. `systemctl start hb2r`.",
    ]
    assert job_paths(config) == ["a.mkv", "b.mkv"]
    kept = state / "hb2r.db.before-restore"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert (state / "hb2r.db").stat().st_mode & 0o777 == 0o600
    assert query(kept, "SELECT rel_path FROM jobs ORDER BY rel_path") == [
        ("a.mkv",),
        ("b.mkv",),
        ("c.mkv",),
        ("d.mkv",),
    ]
    assert sorted(path.name for path in state.iterdir() if not path.name.startswith("hb2r.db.before")) == [
        "agent.lock",
        "hb2r.db",
    ]
    seed(state, "e.mkv")  # opened as the agent opens it: WAL mode again, writable
    assert query(state / "hb2r.db", "PRAGMA journal_mode") == [("wal",)]
    assert job_paths(config) == ["a.mkv", "b.mkv", "e.mkv"]


def test_restore_of_an_older_schema_is_migrated_when_opened(config: Path, state: Path, tmp_path: Path) -> None:
    seed(state, "now.mkv")
    old = tmp_path / "old.db"
    connection = sqlite3.connect(old, isolation_level=None)
    connection.executescript(f"{MIGRATIONS[0]}\nPRAGMA user_version = 1;")
    connection.execute(
        "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, created_at, updated_at)"
        " VALUES ('tv', 'old.mkv', 'f', 'p', 'TV/old.mkv', 'new', 't', 't')"
    )
    connection.close()

    finished = hb2r("restore", "--from", str(old), str(config))

    assert finished.returncode == 0, finished.stderr
    assert f"It is migrated to schema version {SCHEMA_VERSION} when the agent next opens it." in finished.stdout
    assert query(state / "hb2r.db", "PRAGMA user_version") == [(1,)]
    open_database(state).close()
    assert query(state / "hb2r.db", "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert query(state / "hb2r.db", "SELECT rel_path FROM jobs") == [("old.mkv",)]


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database\n" * 100)


def _too_new(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.executescript("".join(MIGRATIONS))
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    connection.close()


def _foreign(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()


def _damaged(path: Path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.executescript("".join(MIGRATIONS))
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason,"
        " created_at, updated_at) VALUES ('tv', ?, 'f', 'p', ?, 'new', 't', 't')",
        [(f"{number}.mkv", f"TV/{number}.mkv") for number in range(2000)],
    )
    connection.execute("COMMIT")
    (root_page,) = connection.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'jobs'").fetchone()
    (page_size,) = connection.execute("PRAGMA page_size").fetchone()
    connection.close()
    data = bytearray(path.read_bytes())
    start = (root_page - 1) * page_size  # the jobs table's root: counting its rows must fail, whatever the schema
    data[start : start + page_size] = b"\xff" * page_size
    path.write_bytes(bytes(data))


def _inconsistent(path: Path) -> None:
    """A database SQLite opens, but whose index no longer matches its table."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.executescript("".join(MIGRATIONS))
    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    connection.execute(
        "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, created_at, updated_at)"
        " VALUES ('tv', 'a.mkv', 'f', 'p', 'TV/a.mkv', 'new', 't1', 't2')"
    )
    connection.execute("PRAGMA writable_schema = ON")
    connection.execute(
        "UPDATE sqlite_schema SET sql = 'CREATE INDEX jobs_by_state ON jobs (created_at, state)'"
        " WHERE name = 'jobs_by_state'"
    )
    connection.close()


@pytest.mark.parametrize(
    "make, message",
    [
        (None, "error: {file}: no such file; the state database was not changed"),
        (_garbage, "error: {file} is not an SQLite database; the state database was not changed"),
        (
            _too_new,
            f"error: {{file}} has schema version {SCHEMA_VERSION + 1}, newer than this hb2r knows "
            f"({SCHEMA_VERSION}); use the hb2r that wrote it, or an older backup; the state database was not changed",
        ),
        (_foreign, "error: {file} is not an hb2r state database (no table jobs, ledger, users)"),
        (_damaged, "error: {file} is not a usable SQLite database: database disk image is malformed"),
        (
            _inconsistent,
            "error: {file} is damaged: PRAGMA integrity_check says: row 1 missing from index jobs_by_state",
        ),
    ],
    ids=["missing", "garbage", "too-new", "not-hb2r", "malformed", "inconsistent"],
)
def test_restore_refuses_a_bad_backup_and_leaves_the_database_alone(
    config: Path, state: Path, tmp_path: Path, make: Callable[[Path], None] | None, message: str
) -> None:
    seed(state, "a.mkv")
    backup = tmp_path / "backup.db"
    if make is not None:
        make(backup)
    before = {path.name: checksum(path) for path in state.iterdir()}

    finished = hb2r("restore", "--from", str(backup), str(config))

    assert finished.returncode == 1
    assert finished.stderr.startswith(message.format(file=backup)), finished.stderr
    assert finished.stderr.endswith("; the state database was not changed\n")
    assert {path.name: checksum(path) for path in state.iterdir()} == before
    assert job_paths(config) == ["a.mkv"]


def test_restore_over_an_unreadable_database_keeps_it_as_it_was(config: Path, state: Path, tmp_path: Path) -> None:
    backup = backup_of_one_job(config, state, tmp_path)
    (state / "hb2r.db").write_bytes(b"a disk error ate this\n")

    finished = hb2r("restore", "--from", str(backup), str(config))

    assert finished.returncode == 0, finished.stderr
    assert "The previous database (file is not a database) is kept as it was in" in finished.stdout
    assert (state / "hb2r.db.before-restore").read_bytes() == b"a disk error ate this\n"
    assert job_paths(config) == ["a.mkv"]


def test_restore_waits_for_another_process_that_has_the_database_open(
    config: Path, state: Path, tmp_path: Path
) -> None:
    backup = backup_of_one_job(config, state, tmp_path)
    seed(state, "b.mkv")
    held = open_database(state)  # e.g. a `hb2r retry` in progress
    try:
        finished = hb2r("restore", "--from", str(backup), str(config))
    finally:
        held.close()

    assert finished.returncode == 1
    assert finished.stderr.startswith(f"error: state database {state / 'hb2r.db'} is open in another process")
    assert not (state / "hb2r.db.before-restore").exists()
    assert job_paths(config) == ["a.mkv", "b.mkv"]


# --- the agent lock ---------------------------------------------------------------------


def test_restore_is_refused_while_an_agent_runs(
    config: Path, state: Path, tmp_path: Path, start_agent: Callable[[], AgentProcess]
) -> None:
    backup = backup_of_one_job(config, state, tmp_path)
    agent = start_agent()

    refused = hb2r("restore", "--from", str(backup), str(config))

    assert refused.returncode == 1
    assert refused.stderr == (
        f"error: an hb2r agent (pid {agent.process.pid}) is running on state_dir {state}; "
        "stop it first (e.g. `systemctl stop hb2r`); nothing was changed\n"
    )
    assert not (state / "hb2r.db.before-restore").exists()
    assert agent.process.poll() is None

    agent.stop()  # the lock goes with the process
    finished = hb2r("restore", "--from", str(backup), str(config))
    assert finished.returncode == 0, finished.stderr
    assert job_paths(config) == ["a.mkv"]


def test_a_second_agent_on_the_same_state_dir_exits_at_once(
    config: Path, state: Path, start_agent: Callable[[], AgentProcess]
) -> None:
    agent = start_agent()

    second = hb2r("run", str(config), timeout=60)

    assert second.returncode == 1
    assert second.stderr.endswith(
        f"error: an hb2r agent (pid {agent.process.pid}) is running on state_dir {state}; one agent per state_dir\n"
    )
    assert agent.process.poll() is None
    assert (state / "agent.lock").read_text() == f"{agent.process.pid}\nrun\n"


# --- a state folder another user may write --------------------------------------------------

AGENT_USER = "nobody"  # stands in for the agent's service account
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser to act as a second user"
)


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A folder a second user can reach (pytest's tmp_path is 0700 root's), removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="hb2r-shared-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def give(folder: Path, user: str) -> None:
    """Give folder and everything in it to user, as the deploy gives state_dir to the agent's user."""
    account = pwd.getpwnam(user)
    for path in (folder, *folder.rglob("*")):
        os.chown(path, account.pw_uid, account.pw_gid, follow_symlinks=False)


def as_user(user: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user, "--", *command], capture_output=True, text=True, cwd=REPO, timeout=120, check=False
    )


# The test interpreter may live where a second user cannot go (pyenv under /root): that user runs
# hb2r with the system's Python 3.11 on this checkout and the test venv's packages.
SYSTEM_PYTHON = Path("/usr/bin/python3.11")


def hb2r_as(user: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    packages = sysconfig.get_paths()["purelib"]
    return as_user(
        user,
        "env",
        f"PYTHONPATH={packages}:{REPO}",
        "PYTHONDONTWRITEBYTECODE=1",
        str(SYSTEM_PYTHON),
        "-m",
        "agent",
        *arguments,
    )


def facts(path: Path) -> tuple[bytes, int, int, int]:
    """What an attack on path would change: its content, owner, group and mode."""
    status = path.stat()
    return path.read_bytes(), status.st_uid, status.st_gid, status.st_mode


@needs_root
def test_a_lock_link_planted_by_the_agents_user_does_not_make_root_write_or_chown(shared_root: Path) -> None:
    config = write_config(shared_root, stable_after=None, attempts=None, limits={})
    state = shared_root / "state"
    seed(state, "a.mkv")
    backup = shared_root / "backup.db"
    assert hb2r("backup", "--to", str(backup), str(config)).returncode == 0
    give(state, AGENT_USER)
    victim = shared_root / "root-only"  # stands in for /etc/shadow
    victim.write_text("root:$6$secret:19000:0:99999:7:::\n")
    victim.chmod(0o600)
    before = facts(victim)
    database = checksum(state / "hb2r.db")
    planted = as_user(AGENT_USER, "ln", "-sfn", str(victim), str(state / "agent.lock"))
    assert planted.returncode == 0, planted.stderr
    assert (state / "agent.lock").is_symlink()

    finished = hb2r("restore", "--from", str(backup), str(config))

    assert facts(victim) == before
    assert finished.returncode == 1
    assert finished.stderr.startswith(
        f"error: state_dir {state} belongs to user {AGENT_USER}, not to root who runs this hb2r; "
        f"run hb2r as {AGENT_USER} (e.g. `runuser -u {AGENT_USER} -- hb2r ...`)"
    ), finished.stderr
    assert finished.stderr.endswith("the state database was not changed\n")
    assert checksum(state / "hb2r.db") == database
    assert not (state / "hb2r.db.before-restore").exists()


@needs_root
@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="needs a Python 3.11 the second user may run")
def test_the_agents_user_restores_its_own_state_folder_and_owns_what_it_made(shared_root: Path) -> None:
    config = write_config(shared_root, stable_after=None, attempts=None, limits={})
    state = shared_root / "state"
    seed(state, "a.mkv")
    backup = shared_root / "backup.db"
    assert hb2r("backup", "--to", str(backup), str(config)).returncode == 0
    seed(state, "b.mkv")
    give(state, AGENT_USER)
    os.chown(backup, pwd.getpwnam(AGENT_USER).pw_uid, -1)

    finished = hb2r_as(AGENT_USER, "restore", "--from", str(backup), str(config))

    assert finished.returncode == 0, finished.stderr
    assert job_paths(config) == ["a.mkv"]
    owners = {path.name: pwd.getpwuid(path.lstat().st_uid).pw_name for path in state.iterdir()}
    assert owners == {name: AGENT_USER for name in ("agent.lock", "hb2r.db", "hb2r.db.before-restore")}


@pytest.mark.parametrize(("mode", "who"), [(0o770, "its group"), (0o707, "others"), (0o1777, "its group and others")])
def test_a_state_folder_others_may_write_is_refused(
    config: Path, state: Path, tmp_path: Path, mode: int, who: str
) -> None:
    backup = backup_of_one_job(config, state, tmp_path)
    database = checksum(state / "hb2r.db")
    state.chmod(mode)
    refusal = (
        f"error: state_dir {state} is writable by {who} (mode {mode & 0o7777:04o}); make it private: chmod 700 {state}"
    )

    for command in (("restore", "--from", str(backup)), ("backup", "--to", str(tmp_path / "again.db")), ("run",)):
        finished = hb2r(*command, str(config), timeout=30)

        assert finished.returncode == 1, (command, finished.stderr)
        assert finished.stderr.splitlines()[-1].startswith(refusal), finished.stderr
    assert checksum(state / "hb2r.db") == database
    assert not (tmp_path / "again.db").exists()
    assert not (state / "agent.lock").exists()


def test_a_link_in_the_agents_own_state_folder_is_refused_not_followed(
    config: Path, state: Path, tmp_path: Path
) -> None:
    backup = backup_of_one_job(config, state, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not hb2r's\n")
    (state / "agent.lock").symlink_to(elsewhere)

    finished = hb2r("restore", "--from", str(backup), str(config))

    assert finished.returncode == 1
    assert finished.stderr.startswith(
        f"error: {state / 'agent.lock'} is a symbolic link; hb2r does not follow links in its state folder: remove it"
    ), finished.stderr
    assert elsewhere.read_text() == "not hb2r's\n"


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_a_link_beside_the_database_is_refused_by_backup_and_restore(
    config: Path, state: Path, tmp_path: Path, command: str
) -> None:
    backup = backup_of_one_job(config, state, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("not hb2r's\n")
    (state / "hb2r.db-shm").unlink(missing_ok=True)  # a read-only open of a WAL database may leave it
    (state / "hb2r.db-shm").symlink_to(elsewhere)
    option = ("--to", str(tmp_path / "again.db")) if command == "backup" else ("--from", str(backup))

    finished = hb2r(command, *option, str(config))

    assert finished.returncode == 1
    assert finished.stderr.startswith(f"error: {state / 'hb2r.db-shm'} is a symbolic link"), finished.stderr
    assert elsewhere.read_text() == "not hb2r's\n"
    assert not (tmp_path / "again.db").exists()
