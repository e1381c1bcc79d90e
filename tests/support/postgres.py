"""A throwaway PostgreSQL cluster for the tests: real Debian PostgreSQL, started once per session.

Why a cluster of our own: the store's PostgreSQL side must be tested against the real server,
and a test run must neither need nor touch an operator's PostgreSQL. The cluster lives in a
temp folder owned by the `postgres` user when the tests run as root (initdb refuses root; the
tests then run initdb and pg_ctl through `runuser`), by the user otherwise; it listens on a free
loopback TCP port only (its Unix socket stays inside the folder), asks every TCP client for a
password (scram-sha-256), and runs with fsync off: its data is thrown away at the end.
`start_cluster(listen=..., clients=...)` makes a cluster that also listens on addresses a test
created itself (the multi-host tests' bridge, see multihost.py) and lets clients of those
networks in, with a password too; no other address is ever listened on.

Each test gets a fresh database owned by the role `hb2r` (a plain role with a password, not a
superuser, as an operator would create for hb2r), so tests cannot see each other's rows.
The binaries come from Debian's `postgresql` package (`make test` installs it); where they
are missing the fixture fails, it does not skip: a skipped store test would hide a broken store.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from agent.store import postgres_schema
from agent.store.database_store import DatabaseStore
from agent.store.postgres import connect_postgres
from tests.support.ports import free_port

POSTGRES_USER = "postgres"  # the OS user Debian's package creates; the cluster's files belong to it
ROLE = "hb2r"


def server_bin_dir(root: Path = Path("/usr/lib/postgresql")) -> Path:
    """Return Debian's newest <root>/<major>/bin that has initdb and pg_ctl; fail the test if none."""
    candidates = [Path(path).parent for path in glob.glob(f"{glob.escape(str(root))}/*/bin/initdb")]
    usable = [folder for folder in candidates if (folder / "pg_ctl").is_file()]
    if not usable:
        pytest.fail(
            f"PostgreSQL server binaries (initdb, pg_ctl) not found in {root}/*/bin: "
            "run `make test` (it installs Debian's postgresql package) or `apt-get install postgresql`",
            pytrace=False,
        )
    return max(usable, key=lambda folder: _major_version(folder.parent.name))


def _major_version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


@dataclass(frozen=True)
class PostgresCluster:
    """A running throwaway cluster: `url(database)` for the role hb2r, `admin_url` for the superuser."""

    folder: Path
    bin_dir: Path
    port: int
    password: str  # the role hb2r's
    admin_password: str
    started_in_seconds: float
    listen: tuple[str, ...] = ()  # addresses besides 127.0.0.1

    def url(self, database: str, *, password: str | None = None, host: str = "127.0.0.1") -> str:
        return f"postgresql://{ROLE}:{password or self.password}@{host}:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://{POSTGRES_USER}:{self.admin_password}@127.0.0.1:{self.port}/postgres"

    def create_database(self, name: str) -> str:
        """Create an empty database owned by hb2r; return its URL."""
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}" OWNER {ROLE}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _as_postgres(argv: list[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # initdb refuses root: as root, run as the postgres user; as anyone else, as oneself.
        ["runuser", "-u", POSTGRES_USER, "--", *argv] if os.geteuid() == 0 else argv,
        cwd=cwd,  # the postgres user may not enter the caller's folder
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _check(result: subprocess.CompletedProcess[str], what: str, *, log: Path | None = None) -> None:
    if result.returncode != 0:
        server_log = log.read_text(errors="replace") if log is not None and log.exists() else ""
        pytest.fail(f"{what} failed ({result.returncode}):\n{result.stdout}{result.stderr}{server_log}", pytrace=False)


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        owner = pwd.getpwnam(POSTGRES_USER)
    except KeyError:
        pytest.fail(f"no '{POSTGRES_USER}' user: install Debian's postgresql package (`make test` does)", pytrace=False)
    os.chown(path, owner.pw_uid, owner.pw_gid)


def start_cluster(*, listen: Sequence[str] = (), clients: Sequence[str] = ()) -> tuple[PostgresCluster, Path]:
    """Make and start a cluster in a new temp folder; return it and its data folder.

    `listen`: addresses to listen on besides 127.0.0.1 (only ones the test made: a cluster
    cannot bind elsewhere); `clients`: networks (CIDR) whose clients may log in with a password.
    """
    began = time.monotonic()
    bin_dir = server_bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="hb2r-postgres-"))
    try:
        return _start_in(folder, bin_dir=bin_dir, began=began, listen=tuple(listen), clients=tuple(clients))
    except BaseException:  # a half-made cluster is stopped and removed too
        if (folder / "data" / "postmaster.pid").exists():
            _as_postgres(
                [str(bin_dir / "pg_ctl"), "stop", "-m", "immediate", f"--pgdata={folder / 'data'}"], cwd=folder
            )
        shutil.rmtree(folder, ignore_errors=True)
        raise


def _start_in(
    folder: Path, *, bin_dir: Path, began: float, listen: tuple[str, ...], clients: tuple[str, ...]
) -> tuple[PostgresCluster, Path]:
    _give_to_server_user(folder)
    data = folder / "data"
    admin_password = secrets.token_urlsafe(16)
    password_file = folder / "superuser.password"
    password_file.write_text(admin_password + "\n")
    _give_to_server_user(password_file)
    password_file.chmod(0o600)
    _check(
        _as_postgres(
            [
                str(bin_dir / "initdb"),
                f"--pgdata={data}",
                f"--username={POSTGRES_USER}",
                f"--pwfile={password_file}",
                "--auth-local=peer",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",  # C collation: text sorts by bytes, as in SQLite
                "--no-sync",
            ],
            cwd=folder,
        ),
        "initdb",
    )
    password_file.unlink()
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            "\n# hb2r test cluster: loopback TCP only, socket in the temp folder, speed over durability\n"
            f"listen_addresses = '{','.join(('127.0.0.1', *listen))}'\n"
            f"unix_socket_directories = '{folder}'\n"
            "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
        )
    if clients:
        with (data / "pg_hba.conf").open("a") as hba:
            hba.write("\n# networks the test made (multihost.py): password logins only\n")
            hba.writelines(f"host all all {network} scram-sha-256\n" for network in clients)
    log = folder / "server.log"
    for attempt in itertools.count(1):
        port = free_port()  # another process may take it before the server binds: try again
        result = _as_postgres(
            [str(bin_dir / "pg_ctl"), "start", "-w", "-t", "30", f"--pgdata={data}", f"--log={log}", f"-o -p {port}"],
            cwd=folder,
        )
        if result.returncode == 0:
            break
        if attempt == 3:
            _check(result, "pg_ctl start", log=log)
    role_password = secrets.token_urlsafe(16)
    with psycopg.connect(
        f"postgresql://{POSTGRES_USER}:{admin_password}@127.0.0.1:{port}/postgres", autocommit=True
    ) as admin:
        admin.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{role_password}'")
    cluster = PostgresCluster(
        folder=folder,
        bin_dir=bin_dir,
        port=port,
        password=role_password,
        admin_password=admin_password,
        started_in_seconds=time.monotonic() - began,
        listen=listen,
    )
    return cluster, data


def stop_cluster(cluster: PostgresCluster, data: Path) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        _as_postgres(
            [str(cluster.bin_dir / "pg_ctl"), "stop", "-m", "immediate", f"--pgdata={data}"], cwd=cluster.folder
        )
    shutil.rmtree(cluster.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A PostgreSQL cluster for the whole session; stopped and removed at the end."""
    cluster, data = start_cluster()
    try:
        yield cluster
    finally:
        stop_cluster(cluster, data)


_database_numbers = itertools.count(1)


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a fresh, empty database owned by the role hb2r; dropped after the test."""
    name = f"hb2r_test_{os.getpid()}_{next(_database_numbers)}"
    url = postgres_cluster.create_database(name)
    try:
        yield url
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture
def direct_postgres_store(postgres_url: str) -> Iterator[DatabaseStore]:
    """A migrated store on its own connection to the test's database: what another host holds."""
    database = connect_postgres(postgres_url)
    postgres_schema.migrate(database)
    opened = DatabaseStore(database)
    yield opened
    opened.close()
