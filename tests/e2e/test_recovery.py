"""Start-up after a crash, with `hb2r run` as a real process on real files and a real database.

The crash states are made by hand (the agent cannot be killed at an exact instruction on
demand): the database and the archive are left exactly as a crash at that point leaves them.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config import load_config
from agent.domain import LedgerEntry
from agent.observe import preset_hashes
from agent.scan import fingerprint
from agent.store import jobs, ledger
from agent.store.db import open_database
from tests.support.agent_process import StartAgent
from tests.support.cli import hb2r
from tests.support.clips import make_clip
from tests.support.configs import write_config
from tests.support.outcomes import jobs_by_state
from tests.support.waiting import wait_for


@pytest.mark.parametrize(
    "reason",
    [
        pytest.param("new", id="a-new-file-whose-output-has-no-ledger-row"),
        pytest.param("changed", id="a-changed-file-whose-ledger-row-is-the-earlier-content's"),
    ],
)
def test_an_output_published_just_before_a_crash_is_settled_not_encoded_again(
    tmp_path: Path, agents: StartAgent, reason: str
) -> None:
    # The crash came between the atomic move into the archive and the COMMIT of the ledger row
    # and the job's `done`: the output is in place, the job is still `running`, and the ledger
    # has no row for it (or, for a changed source, the row of the content encoded before).
    config_path = write_config(tmp_path)
    config = load_config(config_path).config
    source = tmp_path / "tv" / "E01.mkv"
    make_clip(source, seconds=2)
    connection = open_database(config.paths.state_dir)
    preset_hash = preset_hashes(config, warn=print)["tv"]
    started = datetime.now(UTC) - timedelta(minutes=2)
    if reason == "changed":
        ledger.record(
            connection,
            LedgerEntry("tv", "E01.mkv", "earlier-content", 1, 1, preset_hash, "TV/E01.mkv"),
            encoded_at=(started - timedelta(days=1)).isoformat(),
        )
    job = jobs.enqueue(
        connection,
        library="tv",
        rel_path="E01.mkv",
        fingerprint=fingerprint(source, size=source.stat().st_size),
        preset_hash=preset_hash,
        output_path="TV/E01.mkv",
        reason=reason,
        now=started,
    )
    assert job is not None
    jobs.mark_running(connection, job.id, now=started)
    connection.close()
    output = make_clip(tmp_path / "archive" / "TV" / "E01.mkv", seconds=2)  # the verified encode, published
    before = output.stat()

    agent = agents(config_path)

    wait_for(lambda: jobs_by_state(tmp_path) == {"done": ["E01.mkv"]}, what="the job settled as done", agent=agent)
    # In sync once the source is stable (stable_after: 1s): the ledger row is there.
    wait_for(lambda: hb2r("plan", str(config_path)).returncode == 0, what="hb2r plan in sync", agent=agent)
    assert agent.stop() == 0
    after = output.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert agent.events("job started") == []  # never encoded again
    with sqlite3.connect(f"{(tmp_path / 'state' / 'hb2r.db').as_uri()}?mode=ro", uri=True) as database:
        rows = database.execute("SELECT library, rel_path, fingerprint, output_path FROM ledger").fetchall()
    assert rows == [("tv", "E01.mkv", job.fingerprint, "TV/E01.mkv")]
    assert os.listdir(tmp_path / "archive" / "TV") == ["E01.mkv"]
