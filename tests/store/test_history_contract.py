"""History to look back on (agent.store.history), on every store: a row per day added to as encodes
end and the queue changes, the last encodes and failures, and pruning.

Rows are written as the dispatcher writes them: an encode's history row in the transaction that
finishes or fails its job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agent.config.models import Retry
from agent.domain import LedgerEntry
from agent.history import ended, failure_outcome
from agent.store.history import Day, Outcome
from agent.store.protocol import Store

NOON = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RETRY = Retry(attempts=2, backoff=timedelta(seconds=30), max_backoff=timedelta(hours=1))


def claimed(store: Store, rel_path: str, *, size: int) -> int:
    job = store.enqueue(
        library="tv", rel_path=rel_path, fingerprint=f"{size}:{rel_path}", preset_hash="p1",
        output_path=f"TV/{rel_path}", reason="new", now=NOON - timedelta(hours=1),
    )  # fmt: skip
    assert job is not None
    store.mark_running(job.id, now=NOON - timedelta(minutes=30))
    return job.id


def published(store: Store, rel_path: str, *, day: str, size: int, output: int | None, then: str = "") -> None:
    job_id = claimed(store, rel_path, size=size)
    with store.transaction():
        entry = LedgerEntry("tv", rel_path, f"{size}:{rel_path}", size, 1, "p1", f"TV/{rel_path}")
        store.record_output(entry, encoded_at=NOON.isoformat(), output_size=output)
        job = store.mark_done(job_id, now=NOON)
        row = ended(job, outcome=Outcome.DONE, host="nas", seconds=90.0, input_bytes=size, output_bytes=output,
                    larger_output=then, now=NOON)  # fmt: skip
        store.record_history(row._replace(day=day))


def failed(store: Store, rel_path: str, *, day: str, reason: str, size: int = 700) -> str:
    job_id = claimed(store, rel_path, size=size)
    with store.transaction():
        job = store.mark_failed(job_id, error=reason, stderr_tail=["x"], retry=RETRY, now=NOON)
        row = ended(job, outcome=failure_outcome(job.state), host="nas", seconds=5.0, error=reason, now=NOON)
        store.record_history(row._replace(day=day))
    return str(job.state)


def test_each_day_adds_up_its_encodes_failures_bytes_and_time(store: Store) -> None:
    published(store, "a.mkv", day="2024-05-01", size=3000, output=1000)
    published(store, "b.mkv", day="2024-05-01", size=2000, output=500)
    published(store, "kept-source.mkv", day="2024-05-01", size=800, output=800, then="copy")  # saved nothing
    published(store, "dropped.mkv", day="2024-05-01", size=900, output=None, then="skip")  # nothing published
    assert failed(store, "bad.mkv", day="2024-05-01", reason="No title found.") == "failed"
    published(store, "c.mkv", day="2024-05-02", size=4000, output=1000)

    days = store.history_days("2024-04-01")

    assert days == [
        Day("2024-05-01", encodes=4, failures=1, input_bytes=5800, output_bytes=2300, encode_seconds=360.0,
            queue_peak=None, queue_last=None),
        Day("2024-05-02", encodes=1, failures=0, input_bytes=4000, output_bytes=1000, encode_seconds=90.0,
            queue_peak=None, queue_last=None),
    ]  # fmt: skip
    assert store.history_days("2024-05-02") == days[1:]


def test_the_queue_keeps_each_days_peak_and_last_length(store: Store) -> None:
    for length in (3, 12, 7, 0):
        store.sample_queue(day="2024-05-01", length=length)
    store.sample_queue(day="2024-05-02", length=2)
    published(store, "a.mkv", day="2024-05-02", size=3000, output=1000)  # the same row as the queue's

    first, second = store.history_days("2024-05-01")

    assert (first.queue_peak, first.queue_last, first.encodes) == (12, 0, 0)
    assert (second.queue_peak, second.queue_last, second.encodes) == (2, 2, 1)


def test_recent_lists_the_newest_encodes_and_failures_with_their_reason(store: Store) -> None:
    published(store, "old.mkv", day="2024-04-20", size=3000, output=1000)
    published(store, "a.mkv", day="2024-05-01", size=3000, output=1000)
    failed(store, "bad.mkv", day="2024-05-01", reason="HandBrakeCLI exited 3")
    published(store, "b.mkv", day="2024-05-02", size=2000, output=500, then="keep")

    events = store.recent_history(first_day="2024-05-01", limit=10)

    assert [(event.finished.rel_path, event.finished.outcome) for event in events] == [
        ("b.mkv", Outcome.DONE), ("bad.mkv", Outcome.FAILED), ("a.mkv", Outcome.DONE),
    ]  # fmt: skip
    newest, failure, _ = (event.finished for event in events)
    assert (newest.input_bytes, newest.output_bytes, newest.larger_output, newest.seconds) == (2000, 500, "keep", 90.0)
    assert (newest.library, newest.host, newest.finished_at) == ("tv", "nas", "2024-05-01T12:00:00+00:00")
    assert (failure.error, failure.input_bytes, failure.output_bytes) == ("HandBrakeCLI exited 3", 700, None)
    assert [event.finished.rel_path for event in store.recent_history(first_day="2024-01-01", limit=2)] == [
        "b.mkv", "bad.mkv",
    ]  # fmt: skip


def test_a_failure_that_makes_the_job_dead_is_recorded_as_dead(store: Store) -> None:
    job_id = claimed(store, "gone.mkv", size=100)
    with store.transaction():
        job = store.mark_failed_permanently(job_id, error="source is gone", stderr_tail=[], now=NOON)
        store.record_history(ended(job, outcome=failure_outcome(job.state), host="nas", seconds=None,
                                   error="source is gone", now=NOON))  # fmt: skip

    (event,) = store.recent_history(first_day="2000-01-01", limit=5)

    assert (event.finished.outcome, event.finished.seconds, event.finished.error) == (
        Outcome.DEAD, None, "source is gone",
    )  # fmt: skip


def test_pruning_drops_old_days_and_events_and_keeps_the_newest_events(store: Store) -> None:
    store.sample_queue(day="2023-01-01", length=4)
    published(store, "ancient.mkv", day="2023-01-01", size=3000, output=1000)
    for index in range(5):
        published(store, f"e{index}.mkv", day="2024-05-01", size=3000, output=1000)

    gone = store.prune_history(before_day="2024-01-01")

    assert [day.day for day in store.history_days("2000-01-01")] == ["2024-05-01"]
    assert len(store.recent_history(first_day="2000-01-01", limit=100)) == 5
    assert gone == 2
    assert store.history_days("2024-05-01")[0].encodes == 5  # a day kept is kept whole


def test_recent_events_beyond_those_kept_are_pruned_oldest_first(store: Store) -> None:
    from agent.store import history  # the module's own prune, with a small number kept

    for index in range(6):
        published(store, f"e{index}.mkv", day="2024-05-01", size=3000, output=1000)
    database = store.database  # type: ignore[attr-defined]  # both stores are DatabaseStores

    with store.transaction():
        history.prune(database, before_day="2024-01-01", keep=4)

    kept = store.recent_history(first_day="2000-01-01", limit=100)
    assert [event.finished.rel_path for event in kept] == ["e5.mkv", "e4.mkv", "e3.mkv", "e2.mkv"]
    assert store.history_days("2024-05-01")[0].encodes == 6  # the day's row counts on
