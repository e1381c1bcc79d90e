"""A COMMIT that fails must not leave the agent's one connection inside a transaction.

`transaction()` joins an open transaction, so a connection left in one after a failed COMMIT
would make every later block join it: nothing the agent writes afterwards would ever be
committed, and other processes (`hb2r jobs`, the API's readers) would never see it.
Real SQLite on a real file: where WAL is unavailable (some network or FUSE file systems),
SQLite keeps a rollback journal, and COMMIT waits for readers and then fails SQLITE_BUSY.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from agent.store import StoreError
from agent.store.db import database_path, open_database, transaction


def status_keys(state_dir: Path) -> list[str]:
    reader = sqlite3.connect(database_path(state_dir))
    try:
        return [key for (key,) in reader.execute("SELECT key FROM agent_status ORDER BY key")]
    finally:
        reader.close()


def test_a_commit_refused_by_a_reader_is_rolled_back_and_later_writes_are_committed(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    connection = open_database(state_dir)
    connection.execute("PRAGMA journal_mode = DELETE")  # as where WAL is not available
    connection.execute("PRAGMA busy_timeout = 50")
    reader = sqlite3.connect(database_path(state_dir), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM jobs").fetchone()  # holds a shared lock: COMMIT must wait

    with pytest.raises(StoreError, match="locked"), transaction(connection):
        connection.execute("INSERT INTO agent_status VALUES ('refused', 'x', 't')")
    assert not connection.in_transaction
    reader.execute("COMMIT")
    reader.close()

    with transaction(connection):
        connection.execute("INSERT INTO agent_status VALUES ('later', 'y', 't')")

    assert status_keys(state_dir) == ["later"]  # seen by another process: committed
    connection.close()


def test_a_full_disk_at_commit_leaves_the_connection_usable(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    # A real full file system: a 2 MiB tmpfs (we are root; room for a new state database), filled up before the COMMIT.
    # (SQLite rolls this one back by itself; the test keeps it so.)
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        state_dir = mount / "state"
        connection = open_database(state_dir)
        request.addfinalizer(connection.close)
        filler = mount / "filler"
        descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(descriptor, b"x" * 1024)
        except OSError:
            pass
        finally:
            os.close(descriptor)
        with pytest.raises(StoreError, match="full"), transaction(connection):
            connection.execute("INSERT INTO agent_status VALUES ('big', zeroblob(200000), 't')")
        assert not connection.in_transaction
        filler.unlink()

        with transaction(connection):
            connection.execute("INSERT INTO agent_status VALUES ('later', 'y', 't')")

        assert status_keys(state_dir) == ["later"]
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)
