"""The queue's length per day, noted by the dispatcher's ticks (agent.history.QueueSampler), on real SQLite.

What an operator relies on: each day's row has the day's peak and last length of the unfinished
queue (queued, running, to retry); an idle agent does not write every tick; history older than
the retention is gone after the first sample of a new day.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import logs
from agent.history import QueueSampler
from agent.store.history import RETENTION_DAYS
from agent.store.sqlite import SqliteStore, open_store

NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LOG = logs.get_logger("hb2r-test")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = open_store(tmp_path / "state")
    yield opened
    opened.close()


def queue(store: SqliteStore, count: int) -> list[int]:
    made = []
    for index in range(count):
        job = store.enqueue(library="tv", rel_path=f"e{index}.mkv", fingerprint=f"{index}:x", preset_hash="p",
                            output_path=f"TV/e{index}.mkv", reason="new", now=NOON)  # fmt: skip
        assert job is not None
        made.append(job.id)
    return made


def test_each_day_keeps_the_peak_and_last_length_of_the_unfinished_queue(store: SqliteStore) -> None:
    sampler = QueueSampler()
    ids = queue(store, 3)
    sampler.sample(store, now=NOON, log=LOG)
    store.mark_running(ids[0], now=NOON)  # running is still unfinished: 3
    sampler.sample(store, now=NOON + timedelta(seconds=2), log=LOG)
    store.mark_done(ids[0], now=NOON)
    store.cancel(ids[1], now=NOON)  # cancelled waits for an operator: not counted
    sampler.sample(store, now=NOON + timedelta(seconds=4), log=LOG)
    tomorrow = NOON + timedelta(days=1)
    sampler.sample(store, now=tomorrow, log=LOG)  # a new day starts with the length as it is

    today, next_day = store.history_days("2024-01-01")

    local = NOON.astimezone().date()
    assert (today.day, today.queue_peak, today.queue_last) == (local.isoformat(), 3, 1)
    assert (next_day.day, next_day.queue_peak, next_day.queue_last) == ((local + timedelta(days=1)).isoformat(), 1, 1)


def test_an_unchanged_queue_is_not_written_again(store: SqliteStore) -> None:
    sampler = QueueSampler()
    queue(store, 2)
    sampler.sample(store, now=NOON, log=LOG)
    writes = store.database.connection.total_changes

    for tick in range(1, 30):
        sampler.sample(store, now=NOON + timedelta(seconds=2 * tick), log=LOG)

    assert store.database.connection.total_changes == writes


def test_the_first_sample_of_a_day_prunes_what_is_older_than_the_retention(store: SqliteStore) -> None:
    today = NOON.astimezone().date()
    too_old = (today - timedelta(days=RETENTION_DAYS + 1)).isoformat()
    kept = (today - timedelta(days=RETENTION_DAYS)).isoformat()
    store.sample_queue(day=too_old, length=5)
    store.sample_queue(day=kept, length=4)

    QueueSampler().sample(store, now=NOON, log=LOG)

    assert [day.day for day in store.history_days("2000-01-01")] == [kept, today.isoformat()]
