"""The SQLite state database: opening it, and migrating its schema by `PRAGMA user_version`.

One file, `hb2r.db` in `paths.state_dir`, in WAL mode so the HTTP service can read while
the engine writes. Migrations are numbered SQL scripts applied in order, each in its own
transaction, so a database from any earlier version comes up to date on open.

`hb2r plan` must not write anything anywhere. `open_readonly()` therefore never creates
the folder or the file. When no agent is connected (no `-wal` file), the database is
opened immutable, which also keeps SQLite from creating its `-shm` file beside it. A
database at an older schema is copied into memory and migrated there, so the plan is
still exact.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from agent.store.sql import Database, SqliteDatabase

DATABASE_NAME = "hb2r.db"

MIGRATIONS: tuple[str, ...] = (
    # 1: what was encoded, the job queue, the users.
    """
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        library TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        mtime_ns INTEGER NOT NULL,
        preset_hash TEXT NOT NULL,
        output_path TEXT NOT NULL UNIQUE,
        encoded_at TEXT NOT NULL,
        UNIQUE (library, rel_path)
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        library TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        preset_hash TEXT NOT NULL,
        output_path TEXT NOT NULL,
        reason TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'running', 'done', 'failed', 'dead', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
        not_before TEXT,
        error TEXT,
        stderr_tail TEXT,
        progress REAL CHECK (progress IS NULL OR (progress >= 0 AND progress <= 100)),
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (library, rel_path, fingerprint, preset_hash)
    );
    CREATE INDEX jobs_by_state ON jobs (state, created_at);
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('admin', 'user')),
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 2: what each scan saw, so stability and the vanish breaker survive restarts.
    """
    CREATE TABLE seen_files (
        library TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size >= 0),
        mtime_ns INTEGER NOT NULL,
        fingerprint TEXT,
        changed_at_ns INTEGER,
        PRIMARY KEY (library, rel_path)
    ) WITHOUT ROWID;
    CREATE TABLE library_scans (
        library TEXT PRIMARY KEY,
        file_count INTEGER NOT NULL CHECK (file_count >= 0),
        scanned_at TEXT NOT NULL
    );
    """,
    # 3: the dispatcher's question "next job of library L?" answered from an index that
    # holds only the waiting jobs, however many are done. (IF NOT EXISTS: a database set
    # back to an older user_version by hand keeps its indexes.)
    """
    CREATE INDEX IF NOT EXISTS jobs_waiting ON jobs (library, created_at) WHERE state IN ('queued', 'failed');
    """,
    # 4: what the running agent tells other processes, e.g. why jobs are held back.
    """
    CREATE TABLE IF NOT EXISTS agent_status (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    """,
    # 5: the HTTP service: output sizes (space saved), the generated first admin, tokens
    # ended by a logout, libraries an operator paused, and "what changed since" for live updates.
    """
    ALTER TABLE ledger ADD COLUMN output_size INTEGER CHECK (output_size IS NULL OR output_size >= 0);
    ALTER TABLE users ADD COLUMN generated INTEGER NOT NULL DEFAULT 0 CHECK (generated IN (0, 1));
    CREATE TABLE IF NOT EXISTS revoked_tokens (
        jti TEXT PRIMARY KEY,
        expires_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS library_holds (
        library TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        since TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS jobs_by_update ON jobs (updated_at);
    """,
    # 6: whether hb2r made an output or adopted one it found (it never replaces an adopted one).
    # Rows from before are taken as made by hb2r: nothing recorded which were adopted.
    """
    ALTER TABLE ledger ADD COLUMN origin TEXT NOT NULL DEFAULT 'encoded' CHECK (origin IN ('encoded', 'adopted'));
    """,
    # 7: who cancelled a job (an operator's cancel stays; the engine's is undone when the file
    # is wanted again), and a change number that only grows, for "what changed since" readers:
    # the wall clock, and so `updated_at`, may step back.
    """
    ALTER TABLE jobs ADD COLUMN cancelled_by TEXT
        CHECK (cancelled_by IS NULL OR cancelled_by IN ('operator', 'engine'));
    ALTER TABLE jobs ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
    UPDATE jobs SET change_seq = id;
    CREATE INDEX IF NOT EXISTS jobs_by_change ON jobs (change_seq);
    CREATE TRIGGER IF NOT EXISTS jobs_change_on_insert AFTER INSERT ON jobs BEGIN
        UPDATE jobs SET change_seq = (SELECT max(change_seq) FROM jobs) + 1 WHERE id = NEW.id;
    END;
    CREATE TRIGGER IF NOT EXISTS jobs_change_on_update AFTER UPDATE ON jobs WHEN NEW.change_seq = OLD.change_seq BEGIN
        UPDATE jobs SET change_seq = (SELECT max(change_seq) FROM jobs) + 1 WHERE id = NEW.id;
    END;
    """,
    # 8: leases, for several hosts sharing one queue (agent.store.leases): the host running a
    # job, its fencing token (unique; SQLite hands out max + 1 inside the claim's transaction),
    # when its lease runs out (ISO-8601 text on the database's clock), and how many hosts lost it.
    """
    ALTER TABLE jobs ADD COLUMN host TEXT;
    ALTER TABLE jobs ADD COLUMN lease_token INTEGER;
    ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT;
    ALTER TABLE jobs ADD COLUMN host_losses INTEGER NOT NULL DEFAULT 0 CHECK (host_losses >= 0);
    ALTER TABLE jobs ADD COLUMN lost_hosts TEXT;
    CREATE UNIQUE INDEX IF NOT EXISTS jobs_by_lease_token ON jobs (lease_token);
    """,
    # 9: what a running encode has yet to write into the archive (bytes), carried by its host's
    # heartbeats, so that every host's gate counts the encodes of all hosts against the free space.
    """
    ALTER TABLE jobs ADD COLUMN remaining_bytes INTEGER CHECK (remaining_bytes IS NULL OR remaining_bytes >= 0);
    """,
    # 10: one planner at a time (agent.store.leader: the one leader row, its epoch only grows) and
    # the hosts sharing the store as each last reported itself (agent.store.hosts). Times are
    # ISO-8601 text on the database's clock.
    """
    CREATE TABLE IF NOT EXISTS leader (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        host TEXT NOT NULL,
        epoch INTEGER NOT NULL CHECK (epoch >= 1),
        expires_at TEXT NOT NULL,
        taken_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS hosts (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        handbrake_version TEXT,
        libraries TEXT NOT NULL DEFAULT '[]',
        running_jobs INTEGER NOT NULL DEFAULT 0 CHECK (running_jobs >= 0),
        last_seen TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 11: the queue at a million rows (agent.store.jobs: counts, page; ledger: bytes_by_library).
    # Pages of jobs, newest first, by state, library or both, read from an index in id order (no
    # sort of every match). Counts by library and state, and each library's outputs and bytes,
    # kept in tallies that triggers change in the same transaction as the row: /api/status,
    # /health and /metrics read a few rows instead of counting a million. They start from a
    # count of what is there.
    """
    CREATE INDEX IF NOT EXISTS jobs_by_state_id ON jobs (state, id);
    CREATE INDEX IF NOT EXISTS jobs_by_library_id ON jobs (library, id);
    CREATE INDEX IF NOT EXISTS jobs_by_library_state_id ON jobs (library, state, id);
    CREATE TABLE IF NOT EXISTS job_tallies (
        library TEXT NOT NULL,
        state TEXT NOT NULL,
        total INTEGER NOT NULL,
        PRIMARY KEY (library, state)
    ) WITHOUT ROWID;
    DELETE FROM job_tallies;
    INSERT INTO job_tallies (library, state, total) SELECT library, state, count(*) FROM jobs GROUP BY library, state;
    CREATE TRIGGER IF NOT EXISTS job_tallies_on_insert AFTER INSERT ON jobs BEGIN
        INSERT INTO job_tallies (library, state, total) VALUES (NEW.library, NEW.state, 1)
            ON CONFLICT (library, state) DO UPDATE SET total = job_tallies.total + 1;
    END;
    CREATE TRIGGER IF NOT EXISTS job_tallies_on_update AFTER UPDATE OF library, state ON jobs
    WHEN OLD.library IS NOT NEW.library OR OLD.state IS NOT NEW.state BEGIN
        UPDATE job_tallies SET total = total - 1 WHERE library = OLD.library AND state = OLD.state;
        INSERT INTO job_tallies (library, state, total) VALUES (NEW.library, NEW.state, 1)
            ON CONFLICT (library, state) DO UPDATE SET total = job_tallies.total + 1;
    END;
    CREATE TRIGGER IF NOT EXISTS job_tallies_on_delete AFTER DELETE ON jobs BEGIN
        UPDATE job_tallies SET total = total - 1 WHERE library = OLD.library AND state = OLD.state;
    END;
    CREATE TABLE IF NOT EXISTS ledger_tallies (
        library TEXT PRIMARY KEY,
        outputs INTEGER NOT NULL,
        input_bytes INTEGER NOT NULL,
        output_bytes INTEGER NOT NULL
    ) WITHOUT ROWID;
    DELETE FROM ledger_tallies;
    INSERT INTO ledger_tallies (library, outputs, input_bytes, output_bytes)
        SELECT library, count(*), coalesce(sum(CASE WHEN output_size IS NOT NULL THEN size END), 0),
               coalesce(sum(output_size), 0)
        FROM ledger GROUP BY library;
    CREATE TRIGGER IF NOT EXISTS ledger_tallies_on_insert AFTER INSERT ON ledger BEGIN
        INSERT INTO ledger_tallies (library, outputs, input_bytes, output_bytes)
            VALUES (NEW.library, 1, CASE WHEN NEW.output_size IS NOT NULL THEN NEW.size ELSE 0 END,
                    coalesce(NEW.output_size, 0))
            ON CONFLICT (library) DO UPDATE SET
                outputs = ledger_tallies.outputs + excluded.outputs,
                input_bytes = ledger_tallies.input_bytes + excluded.input_bytes,
                output_bytes = ledger_tallies.output_bytes + excluded.output_bytes;
    END;
    CREATE TRIGGER IF NOT EXISTS ledger_tallies_on_update AFTER UPDATE OF library, size, output_size ON ledger BEGIN
        UPDATE ledger_tallies SET
            outputs = outputs - 1,
            input_bytes = input_bytes - CASE WHEN OLD.output_size IS NOT NULL THEN OLD.size ELSE 0 END,
            output_bytes = output_bytes - coalesce(OLD.output_size, 0)
        WHERE library = OLD.library;
        INSERT INTO ledger_tallies (library, outputs, input_bytes, output_bytes)
            VALUES (NEW.library, 1, CASE WHEN NEW.output_size IS NOT NULL THEN NEW.size ELSE 0 END,
                    coalesce(NEW.output_size, 0))
            ON CONFLICT (library) DO UPDATE SET
                outputs = ledger_tallies.outputs + excluded.outputs,
                input_bytes = ledger_tallies.input_bytes + excluded.input_bytes,
                output_bytes = ledger_tallies.output_bytes + excluded.output_bytes;
    END;
    CREATE TRIGGER IF NOT EXISTS ledger_tallies_on_delete AFTER DELETE ON ledger BEGIN
        UPDATE ledger_tallies SET
            outputs = outputs - 1,
            input_bytes = input_bytes - CASE WHEN OLD.output_size IS NOT NULL THEN OLD.size ELSE 0 END,
            output_bytes = output_bytes - coalesce(OLD.output_size, 0)
        WHERE library = OLD.library;
    END;
    """,
    # 12: passes that list only the folders that changed (agent.incremental_scan): each folder a
    # walk of a library or of the archive reached, the names in the archive's folders, each file's
    # ctime and folder (to give it back without a stat), each ledger row's folder and the indexes a
    # batch of folders is planned by, and when the last full pass ran and how long it took. A
    # file's folder is its path up to the last '/'.
    """
    CREATE TABLE IF NOT EXISTS scanned_folders (
        library TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        identity TEXT NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        via_link INTEGER NOT NULL DEFAULT 0 CHECK (via_link IN (0, 1)),
        problems INTEGER NOT NULL DEFAULT 0 CHECK (problems IN (0, 1)),
        file_count INTEGER NOT NULL CHECK (file_count >= 0),
        listed_at_ns INTEGER NOT NULL,
        newest_change_ns INTEGER NOT NULL,
        PRIMARY KEY (library, rel_path)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS archive_folders (
        rel_path TEXT PRIMARY KEY,
        identity TEXT NOT NULL,
        mtime_ns INTEGER NOT NULL,
        ctime_ns INTEGER NOT NULL,
        problems INTEGER NOT NULL DEFAULT 0 CHECK (problems IN (0, 1)),
        file_count INTEGER NOT NULL CHECK (file_count >= 0),
        listed_at_ns INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS archive_files (
        rel_path TEXT PRIMARY KEY,
        folder TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS archive_files_by_folder ON archive_files (folder);
    ALTER TABLE seen_files ADD COLUMN ctime_ns INTEGER;
    ALTER TABLE seen_files ADD COLUMN folder TEXT NOT NULL DEFAULT '';
    UPDATE seen_files SET folder = rtrim(rtrim(rel_path, replace(rel_path, '/', '')), '/');
    CREATE INDEX IF NOT EXISTS seen_files_by_folder ON seen_files (library, folder);
    ALTER TABLE ledger ADD COLUMN folder TEXT NOT NULL DEFAULT '';
    UPDATE ledger SET folder = rtrim(rtrim(rel_path, replace(rel_path, '/', '')), '/');
    CREATE INDEX IF NOT EXISTS ledger_by_folder ON ledger (library, folder);
    CREATE INDEX IF NOT EXISTS ledger_by_fingerprint ON ledger (library, fingerprint);
    CREATE INDEX IF NOT EXISTS ledger_by_size ON ledger (library, size);
    ALTER TABLE library_scans ADD COLUMN full_at TEXT;
    ALTER TABLE library_scans ADD COLUMN full_seconds REAL CHECK (full_seconds IS NULL OR full_seconds >= 0);
    """,
    # 13: the queue's order (agent.store.order): each job's source size (from its fingerprint,
    # `size:hash`) for smallest/largest first, and an admin's "move to the front" (priority > 0,
    # the latest moved highest). Each order reads a partial index of the waiting jobs. And each
    # content's media facts (agent.store.media_facts), or why ffprobe could not read them.
    """
    ALTER TABLE jobs ADD COLUMN source_size INTEGER NOT NULL DEFAULT 0 CHECK (source_size >= 0);
    ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0 CHECK (priority >= 0);
    UPDATE jobs SET source_size = CAST(substr(fingerprint, 1, instr(fingerprint, ':') - 1) AS INTEGER)
    WHERE fingerprint GLOB '[0-9]*:*' AND substr(fingerprint, 1, instr(fingerprint, ':') - 1) NOT GLOB '*[^0-9]*';
    CREATE INDEX IF NOT EXISTS jobs_waiting_by_size ON jobs (library, source_size) WHERE state IN ('queued', 'failed');
    CREATE INDEX IF NOT EXISTS jobs_fronted ON jobs (priority) WHERE priority > 0 AND state IN ('queued', 'failed');
    CREATE TABLE IF NOT EXISTS media_facts (
        fingerprint TEXT PRIMARY KEY,
        facts TEXT,
        error TEXT,
        probed_at TEXT NOT NULL,
        CHECK ((facts IS NULL) <> (error IS NULL))
    ) WITHOUT ROWID;
    """,
    # 14: what the rules did, per library (agent.store.decisions): each ledger row's larger_output
    # fallback (the `then` that applied: copy, keep or skip), and partial indexes over the few rows
    # that are a rule's copy or a fallback, so that counting them reads those rows, not the ledger.
    """
    ALTER TABLE ledger ADD COLUMN larger_output TEXT CHECK (larger_output IN ('copy', 'keep', 'skip'));
    CREATE INDEX IF NOT EXISTS ledger_rule_copies ON ledger (library)
        WHERE substr(preset_hash, 1, 5) = 'copy:' AND larger_output IS NULL;
    CREATE INDEX IF NOT EXISTS ledger_larger_outputs ON ledger (library, larger_output) WHERE larger_output IS NOT NULL;
    """,
    # 15: history to look back on (agent.store.history): a row per local day (YYYY-MM-DD), added to as
    # encodes end and the queue changes, and a row per ended encode or failure for the "Recent" list.
    """
    CREATE TABLE IF NOT EXISTS history_days (
        day TEXT PRIMARY KEY,
        encodes INTEGER NOT NULL DEFAULT 0 CHECK (encodes >= 0),
        failures INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
        input_bytes INTEGER NOT NULL DEFAULT 0 CHECK (input_bytes >= 0),
        output_bytes INTEGER NOT NULL DEFAULT 0 CHECK (output_bytes >= 0),
        encode_seconds REAL NOT NULL DEFAULT 0 CHECK (encode_seconds >= 0),
        queue_peak INTEGER CHECK (queue_peak IS NULL OR queue_peak >= 0),
        queue_last INTEGER CHECK (queue_last IS NULL OR queue_last >= 0)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS history_events (
        id INTEGER PRIMARY KEY,
        finished_at TEXT NOT NULL,
        day TEXT NOT NULL,
        library TEXT NOT NULL,
        rel_path TEXT NOT NULL,
        job_id INTEGER NOT NULL,
        host TEXT NOT NULL,
        outcome TEXT NOT NULL CHECK (outcome IN ('done', 'failed', 'dead')),
        seconds REAL CHECK (seconds IS NULL OR seconds >= 0),
        input_bytes INTEGER CHECK (input_bytes IS NULL OR input_bytes >= 0),
        output_bytes INTEGER CHECK (output_bytes IS NULL OR output_bytes >= 0),
        larger_output TEXT,
        error TEXT
    );
    CREATE INDEX IF NOT EXISTS history_events_by_day ON history_events (day);
    """,
    # 16: the estimated saving (agent.saving_estimate): each job's, from when it was queued, for `order:
    # saving` (a partial index of the waiting jobs, as the other orders), and a partial index of
    # the finished encodes by library and time, from which the estimate learns
    # (agent.store.encode_history). Jobs queued before have no estimate (0).
    """
    ALTER TABLE jobs ADD COLUMN saving INTEGER NOT NULL DEFAULT 0 CHECK (saving >= 0);
    CREATE INDEX IF NOT EXISTS jobs_waiting_by_saving ON jobs (library, saving) WHERE state IN ('queued', 'failed');
    CREATE INDEX IF NOT EXISTS ledger_encodes ON ledger (library, encoded_at)
        WHERE origin = 'encoded' AND output_size IS NOT NULL;
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


class StateError(Exception):
    """The state database cannot be used; the message says why and what to do."""


def database_path(state_dir: Path) -> Path:
    return state_dir / DATABASE_NAME


def open_database(state_dir: Path) -> SqliteDatabase:
    """Open (creating if needed, folder 0700) and migrate the state database; return it.

    Raise StateError if the folder cannot be made, someone else may write it, the database or
    a side file is a link, or the schema is newer than this hb2r knows.
    """
    from agent.store.private import make_state_dir, open_nofollow, refuse_links  # it needs StateError from here

    make_state_dir(state_dir)
    path = database_path(state_dir)
    try:
        os.close(open_nofollow(path, os.O_RDWR | os.O_CREAT))  # made 0600 here, not by SQLite
    except OSError as error:
        raise StateError(f"cannot open state database {path}: {error.strerror}") from None
    refuse_links(*(Path(f"{path}{suffix}") for suffix in ("-wal", "-shm", "-journal")))
    try:
        connection = sqlite3.connect(database_path(state_dir), isolation_level=None, timeout=30)
    except sqlite3.Error as error:
        raise StateError(f"cannot open state database {database_path(state_dir)}: {error}") from None
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA foreign_keys = ON")
        connection.execute("PRAGMA synchronous = NORMAL")
        migrate(connection)
    except (sqlite3.Error, StateError) as error:
        connection.close()
        if isinstance(error, StateError):
            raise
        raise StateError(f"state database {database_path(state_dir)}: {error}") from None
    return SqliteDatabase(connection)


def open_readonly(state_dir: Path, *, warn: Callable[[str], None] = lambda message: None) -> SqliteDatabase | None:
    """Open the state database without writing anything; return None if there is none yet.

    Raise StateError if it cannot be read or its schema is newer than this hb2r knows.
    """
    path = database_path(state_dir)
    try:  # an operator's own user may not enter the agent's 0700 state_dir
        if not path.is_file():
            return None
        has_wal = Path(f"{path}-wal").exists()
        has_shm = Path(f"{path}-shm").exists()
    except OSError as error:
        raise StateError(f"cannot read state database {path}: {error.strerror}") from None
    # With both side files present (an agent is running, or died), a read-only open uses
    # them as they are. Without the -shm file SQLite would create one: open immutable.
    if has_wal and not has_shm:
        warn(f"{path}-wal has changes not yet merged into the database; what is shown may miss them")
    uri = f"{path.absolute().as_uri()}?{'mode=ro' if has_wal and has_shm else 'immutable=1'}"
    try:
        connection = sqlite3.connect(uri, uri=True, isolation_level=None)
        version = _user_version(connection)
    except sqlite3.Error as error:
        raise StateError(f"cannot read state database {path}: {error}") from None
    if version > SCHEMA_VERSION:
        connection.close()
        raise StateError(_too_new(path, version))
    if version < SCHEMA_VERSION:
        memory = sqlite3.connect(":memory:", isolation_level=None)
        connection.backup(memory)
        connection.close()
        migrate(memory)
        return SqliteDatabase(memory)
    return SqliteDatabase(connection)


def migrate(connection: sqlite3.Connection | SqliteDatabase) -> int:
    """Apply the migrations the database lacks, each in its own transaction; return the new version."""
    if isinstance(connection, SqliteDatabase):
        connection = connection.connection
    version = _user_version(connection)
    if version > SCHEMA_VERSION:
        raise StateError(_too_new(Path(_main_file(connection) or "(memory)"), version))
    for number in range(version + 1, SCHEMA_VERSION + 1):
        script = MIGRATIONS[number - 1]
        connection.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    return SCHEMA_VERSION


def _user_version(connection: sqlite3.Connection) -> int:
    row = connection.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def _main_file(connection: sqlite3.Connection) -> str | None:
    for _, name, file in connection.execute("PRAGMA database_list"):
        if name == "main":
            return str(file) or None
    return None


def _too_new(path: Path, version: int) -> str:
    return (
        f"state database {path} has schema version {version}, newer than this hb2r "
        f"knows ({SCHEMA_VERSION}); upgrade hb2r or restore a backup"
    )


def transaction(database: Database) -> AbstractContextManager[None]:
    """Run the block in the database's transaction (see `Database.transaction`)."""
    return database.transaction()
