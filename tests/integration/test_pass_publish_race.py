"""A leader's pass and another host's publish of the same job, on a real PostgreSQL.

The pass plans from the ledger as it was when it began; by the time it queues, another host may
be publishing that very job (its ledger row and its `done` in one transaction). The pass must
then wait for that publish and see it, not reopen the job just done: that would encode the same
content twice (found by tests/e2e/test_several_hosts.py). Two real connections to one database;
the publish is held open at the exact moment that matters (a real race, made to happen on demand).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from agent import engine, logs
from agent.config import load_config
from agent.domain import LedgerEntry, SourceFile, Transcode, TranscodeReason
from agent.engine import AgentState
from agent.store import jobs
from agent.store.postgres_store import PostgresStore, open_postgres_store

IDENTITY = {"library": "tv", "rel_path": "E03.mkv", "fingerprint": "fp-e03", "preset_hash": "p1"}


@pytest.fixture
def two_hosts(postgres_url: str) -> Iterator[tuple[PostgresStore, PostgresStore]]:
    leader, publisher = open_postgres_store(postgres_url), open_postgres_store(postgres_url)
    yield leader, publisher
    leader.close()
    publisher.close()


def waiting_on_a_lock(url: str) -> bool:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()
        return bool(row and row[0])


def test_a_pass_does_not_queue_again_a_job_another_host_is_publishing_meanwhile(
    tmp_path: Path, two_hosts: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    leader, publisher = two_hosts
    (tmp_path / "tv").mkdir()
    config_path = tmp_path / "config.yaml"
    config_path.write_text(
        "version: 1\n"
        f"paths: {{archive: {tmp_path / 'archive'}, state_dir: {tmp_path / 'state'}}}\n"
        f"libraries:\n  - {{name: tv, source: {tmp_path / 'tv'}, output: TV, preset: p}}\n"
        "presets: {p: {handbrake: 'Very Fast 480p30'}}\n"
        f"auth: {{jwt_secret_file: {tmp_path / 'jwt.secret'}, bcrypt_rounds: 4}}\n"
    )
    state = AgentState(
        config=load_config(config_path).config, store=leader, preset_hashes={"p": "p1"}
    )  # by preset name
    now = datetime.now(UTC)
    job = leader.enqueue(**IDENTITY, output_path="TV/E03.mkv", reason="new", now=now)
    assert job is not None
    claim = publisher.claim("desktop", libraries=["tv"], lease=timedelta(seconds=30), library_order=["tv"])
    assert claim is not None and claim.job.id == job.id
    # The leader planned before the publish: no ledger entry then, so "new".
    action = Transcode("tv", SourceFile("E03.mkv", 10, 1, 1, "fp-e03"), "TV/E03.mkv", TranscodeReason.NEW)

    published, commit = threading.Event(), threading.Event()

    def publish() -> None:  # as the runner does: output in place, then ledger and done, one transaction
        output = tmp_path / "archive" / "TV" / "E03.mkv"
        output.parent.mkdir(parents=True)
        output.write_bytes(b"encoded")
        with publisher.transaction():
            entry = LedgerEntry(**IDENTITY, size=10, mtime_ns=1, output_path="TV/E03.mkv")
            publisher.finish_claimed(job.id, claim.token, entry, encoded_at=now.isoformat(), now=now)
            published.set()
            assert commit.wait(timeout=30)

    publishing = threading.Thread(target=publish)
    publishing.start()
    try:
        assert published.wait(timeout=30)
        queueing = threading.Thread(
            target=engine._queue,
            args=(state, leader, [action], {}),
            kwargs={"log": logs.get_logger("test"), "now": now},
        )
        queueing.start()
        end = time.monotonic() + 10  # the pass reaches the row the publish holds, and waits
        while not waiting_on_a_lock(postgres_url):
            assert time.monotonic() < end and queueing.is_alive(), "the pass never met the publish's lock"
            time.sleep(0.05)
    finally:
        commit.set()
        publishing.join(timeout=30)
    queueing.join(timeout=30)

    assert leader.get_job(job.id).state is jobs.JobState.DONE  # type: ignore[union-attr]
