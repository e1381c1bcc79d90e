"""A library renamed in the config converges: real reconcile passes, a real database, `hb2r plan`.

Before, every file of the renamed library stayed "adopt" (its outputs are recorded under the
old name), `hb2r plan` exited 2 forever and a changed source was never encoded again.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from agent import logs
from agent.config import load_config
from agent.domain import LedgerEntry
from agent.engine import AgentState, reconcile
from agent.observe import preset_hashes
from agent.scan import fingerprint
from agent.store import jobs, ledger
from agent.store.db import open_database
from agent.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[2]


def write_config(root: Path, *, name: str) -> Path:
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        f"libraries: [{{name: {name}, source: tv, output: TV, preset: tv, stable_after: 0s}}]\n"
        "presets: {tv: {handbrake: 'Very Fast 480p30'}}\n"
    )
    return config


def plan_exit_code(config: Path) -> tuple[int, str]:
    finished = subprocess.run(
        [sys.executable, "-m", "agent", "plan", str(config)], cwd=REPO, capture_output=True, text=True, check=False
    )
    return finished.returncode, finished.stdout + finished.stderr


async def test_a_renamed_library_carries_its_ledger_over_and_a_changed_source_is_encoded_again(tmp_path: Path) -> None:
    logs.configure(stream=io.StringIO(), json=True)
    for folder in ("tv", "archive/TV"):
        (tmp_path / folder).mkdir(parents=True)
    config_path = write_config(tmp_path, name="tv")
    config = load_config(config_path).config
    hashes = preset_hashes(config, warn=print)
    connection = open_database(config.paths.state_dir)
    for number in (1, 2, 3):  # three files encoded under the library's first name
        source = tmp_path / "tv" / f"E0{number}.mkv"
        source.write_bytes(b"episode %d " % number * 5000)
        old = source.stat().st_mtime - 3600
        os.utime(source, (old, old))
        (tmp_path / "archive" / "TV" / source.name).write_bytes(b"transcode %d" % number)
        stat = source.stat()
        ledger.record(
            connection,
            LedgerEntry(
                "tv",
                source.name,
                fingerprint(source, size=stat.st_size),
                stat.st_size,
                stat.st_mtime_ns,
                hashes["tv"],
                f"TV/{source.name}",
            ),
            encoded_at=datetime.now(UTC).isoformat(),
        )
    assert plan_exit_code(config_path)[0] == 0

    config_path = write_config(tmp_path, name="series")
    config = load_config(config_path).config
    state = AgentState(config=config, store=SqliteStore(connection), preset_hashes=hashes)
    log = logs.get_logger("test")
    await reconcile(state, log=log)

    code, output = plan_exit_code(config_path)
    assert code == 0, output  # in sync after one pass
    assert jobs.list_jobs(connection) == []  # nothing encoded again
    assert sorted(entry.library for entry in ledger.load_entries(connection)) == ["series"] * 3
    await reconcile(state, log=log)
    assert jobs.list_jobs(connection) == []

    changed = tmp_path / "tv" / "E02.mkv"
    changed.write_bytes(b"a new cut " * 7000)
    old = changed.stat().st_mtime - 3600
    os.utime(changed, (old, old))
    await reconcile(state, log=log)
    assert [(job.library, job.rel_path, job.reason) for job in jobs.list_jobs(connection)] == [
        ("series", "E02.mkv", "changed")
    ]
    connection.close()
