"""The job queue on a real SQLite database: identity, priority, backoff, dead letters, recovery.

Time is passed in: `at(seconds)` is that many seconds after T0, so no test sleeps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from agent.config.models import Retry
from agent.domain import LedgerEntry
from agent.store import StoreError, jobs, ledger
from agent.store.db import MIGRATIONS, open_database, transaction
from agent.store.jobs import Job, JobNotFound, JobState, JobStateError
from tests.support.jobs import new_job

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RETRY = Retry(attempts=3, backoff=timedelta(seconds=30), max_backoff=timedelta(hours=1))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = open_database(tmp_path / "state")
    yield connection
    connection.close()


def add(connection: sqlite3.Connection, rel_path: str = "Show/E01.mkv", **fields: Any) -> Job | None:
    """Queue rel_path (fields: new_job's options); return the job, or None if it was not queued."""
    return jobs.enqueue(connection, **new_job(rel_path, **fields))


def added(connection: sqlite3.Connection, rel_path: str = "Show/E01.mkv", **identity: str) -> Job:
    job = add(connection, rel_path, **identity)  # type: ignore[arg-type]
    assert job is not None
    return job


def fail(connection: sqlite3.Connection, job: Job, *, now: datetime = T0, retry: Retry = RETRY) -> Job:
    jobs.mark_running(connection, job.id, now=now)
    return jobs.mark_failed(
        connection, job.id, error="HandBrakeCLI exited with 3", stderr_tail=["x264: broken"], retry=retry, now=now
    )


def bring(connection: sqlite3.Connection, job: Job, state: JobState) -> Job:
    """Move a queued job to `state` the way the engine would; return it."""
    if state is JobState.RUNNING:
        return jobs.mark_running(connection, job.id, now=T0)
    if state is JobState.DONE:
        jobs.mark_running(connection, job.id, now=T0)
        return jobs.mark_done(connection, job.id, now=T0)
    if state is JobState.FAILED:
        return fail(connection, job)
    if state is JobState.DEAD:
        for _ in range(RETRY.attempts):
            job = fail(connection, job)
        assert job.state is JobState.DEAD
        return job
    if state is JobState.CANCELLED:
        return jobs.cancel(connection, job.id, now=T0)
    return job


def test_a_new_transcode_is_queued_with_nothing_counted(database: sqlite3.Connection) -> None:
    job = added(database, "Show/E01.mkv")

    assert job.state is JobState.QUEUED
    assert (job.library, job.rel_path, job.output_path, job.reason) == ("tv", "Show/E01.mkv", "TV/Show/E01.mkv", "new")
    assert job.attempts == 0
    assert job.not_before is job.error is job.stderr_tail is job.progress is None
    assert job.created_at == job.updated_at == "2024-05-01T12:00:00.000000+00:00"
    assert jobs.get(database, job.id) == job
    assert jobs.get(database, job.id + 1) is None


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(JobState.QUEUED, id="asking-again-while-queued-queues-nothing-more"),
        pytest.param(JobState.RUNNING, id="asking-again-while-it-runs-queues-nothing"),
        pytest.param(JobState.FAILED, id="a-failed-job-waits-for-its-backoff-not-for-a-new-job"),
        pytest.param(JobState.DEAD, id="a-dead-job-stays-dead-until-an-operator-retries-it"),
    ],
)
def test_the_same_identity_is_queued_only_once(database: sqlite3.Connection, state: JobState) -> None:
    bring(database, added(database), state)
    before = jobs.list_jobs(database)

    assert add(database, now=at(600)) is None

    assert jobs.list_jobs(database) == before
    assert [job.state for job in before] == [state]


def test_a_done_job_is_queued_again_when_the_plan_wants_it_again(database: sqlite3.Connection) -> None:
    # The plan asks again for content encoded before only when its output went missing:
    # the same job runs again, counting its attempts from zero.
    job = bring(database, added(database), JobState.DONE)

    again = add(database, now=at(600))

    assert again is not None
    assert again.id == job.id
    assert again.state is JobState.QUEUED
    assert again.attempts == 0
    assert len(jobs.list_jobs(database)) == 1


def test_a_cancelled_job_comes_back_when_the_same_content_is_wanted_again(database: sqlite3.Connection) -> None:
    # The engine cancels a job the plan stops wanting (the file was touched and must settle);
    # once it is stable again with the same content, its job must not be refused forever.
    job = fail(database, added(database))
    jobs.cancel(database, job.id, now=at(10))

    again = add(database, now=at(100))

    assert again is not None
    assert again.id == job.id
    assert again.state is JobState.QUEUED
    assert again.attempts == 1  # its failures still count towards dead
    assert again.error == "HandBrakeCLI exited with 3"
    assert again.not_before is None
    assert again.updated_at == "2024-05-01T12:01:40.000000+00:00"
    assert len(jobs.list_jobs(database)) == 1


@pytest.mark.parametrize(
    "old_state, old_state_after",
    [
        pytest.param(JobState.QUEUED, JobState.CANCELLED, id="the-queued-job-of-the-old-content-is-cancelled"),
        pytest.param(JobState.FAILED, JobState.CANCELLED, id="a-failed-job-of-the-old-content-is-not-retried"),
        pytest.param(JobState.RUNNING, JobState.RUNNING, id="a-running-encode-is-left-to-the-engine"),
        pytest.param(JobState.DONE, JobState.DONE, id="a-done-job-stays-history"),
        pytest.param(JobState.DEAD, JobState.DEAD, id="a-dead-job-stays-history"),
    ],
)
def test_changed_content_gets_a_new_job(
    database: sqlite3.Connection, old_state: JobState, old_state_after: JobState
) -> None:
    old = bring(database, added(database, fingerprint="100:old"), old_state)

    new = add(database, fingerprint="200:new", now=at(60))

    assert new is not None
    assert new.id != old.id
    assert (new.state, new.fingerprint, new.attempts) == (JobState.QUEUED, "200:new", 0)
    after = jobs.get(database, old.id)
    assert after is not None
    assert after.state is old_state_after


def test_a_changed_preset_supersedes_the_queued_job_too(database: sqlite3.Connection) -> None:
    old = added(database, preset_hash="p1")

    new = add(database, preset_hash="p2", now=at(1))

    assert new is not None
    assert [(job.preset_hash, job.state) for job in jobs.list_jobs(database)] == [
        ("p1", JobState.CANCELLED),
        ("p2", JobState.QUEUED),
    ]
    assert jobs.get(database, old.id) == old._replace(
        state=JobState.CANCELLED, updated_at=new.created_at, cancelled_by="engine"
    )


def test_the_same_path_in_another_library_is_another_file(database: sqlite3.Connection) -> None:
    added(database, "Clip.mkv", library="tv")
    added(database, "Clip.mkv", library="movies")

    assert [(job.library, job.state) for job in jobs.list_jobs(database)] == [
        ("tv", JobState.QUEUED),
        ("movies", JobState.QUEUED),
    ]


# (library, path, created at seconds after T0), enqueued in this order.
PRIORITY_JOBS = [
    ("movies", "Old.mkv", 0),
    ("tv", "A.mkv", 10),
    ("tv", "B.mkv", 5),
    ("tv", "C.mkv", 5),  # same second as B, queued after it
    ("music", "X.mkv", 1),  # not a configured library (any more)
    ("other", "Y.mkv", 2),
]


@pytest.mark.parametrize(
    "library_order, excluded, expected",
    [
        pytest.param(
            ["tv", "movies"],
            [],
            ["tv/B.mkv", "tv/C.mkv", "tv/A.mkv", "movies/Old.mkv", "music/X.mkv", "other/Y.mkv"],
            id="libraries-in-file-order-then-oldest-first-then-unlisted-libraries-by-age",
        ),
        pytest.param(
            ["movies", "tv"],
            [],
            ["movies/Old.mkv", "tv/B.mkv", "tv/C.mkv", "tv/A.mkv", "music/X.mkv", "other/Y.mkv"],
            id="reordering-the-libraries-reorders-the-work",
        ),
        pytest.param(
            ["tv", "movies"],
            ["tv", "other"],
            ["movies/Old.mkv", "music/X.mkv"],
            id="a-paused-library-starts-nothing",
        ),
        pytest.param(
            [],
            [],
            ["movies/Old.mkv", "music/X.mkv", "other/Y.mkv", "tv/B.mkv", "tv/C.mkv", "tv/A.mkv"],
            id="without-an-order-the-oldest-job-goes-first",
        ),
    ],
)
def test_jobs_start_by_library_order_then_age(
    database: sqlite3.Connection, library_order: list[str], excluded: list[str], expected: list[str]
) -> None:
    for library, rel_path, seconds in PRIORITY_JOBS:
        added(database, rel_path, library=library, now=at(seconds))  # type: ignore[arg-type]

    started = []
    while job := jobs.next_runnable(database, now=at(60), library_order=library_order, exclude_libraries=excluded):
        started.append(f"{job.library}/{job.rel_path}")
        jobs.mark_running(database, job.id, now=at(60))
        jobs.mark_done(database, job.id, now=at(60))

    assert started == expected


@pytest.mark.parametrize(
    "seconds_after_failure, runnable",
    [
        pytest.param(0, False, id="not-at-once"),
        pytest.param(29.999, False, id="not-a-moment-before-the-backoff-ends"),
        pytest.param(30, True, id="exactly-when-the-backoff-ends"),
        pytest.param(3600, True, id="any-time-later"),
    ],
)
def test_a_failed_job_runs_again_only_after_its_backoff(
    database: sqlite3.Connection, seconds_after_failure: float, runnable: bool
) -> None:
    job = fail(database, added(database), now=at(100))
    assert job.not_before == "2024-05-01T12:02:10.000000+00:00"

    found = jobs.next_runnable(database, now=at(100 + seconds_after_failure), library_order=["tv"])

    assert (found == job) is runnable
    assert (found is None) is not runnable


def test_a_running_job_is_not_offered_again(database: sqlite3.Connection) -> None:
    job = added(database)
    jobs.mark_running(database, job.id, now=T0)

    assert jobs.next_runnable(database, now=at(1), library_order=["tv"]) is None


def test_a_new_version_of_a_file_waits_until_the_old_one_finishes_encoding(database: sqlite3.Connection) -> None:
    old = bring(database, added(database, fingerprint="100:old"), JobState.RUNNING)
    new = added(database, fingerprint="200:new")
    other = added(database, "Show/E02.mkv")

    assert jobs.next_runnable(database, now=at(1), library_order=["tv"]) == other  # one encode per output
    jobs.mark_running(database, other.id, now=at(1))
    assert jobs.next_runnable(database, now=at(1), library_order=["tv"]) is None

    jobs.mark_done(database, old.id, now=at(2))

    assert jobs.next_runnable(database, now=at(2), library_order=["tv"]) == new


def test_the_waits_between_tries_double_up_to_the_maximum(database: sqlite3.Connection) -> None:
    retry = Retry(attempts=7, backoff=timedelta(seconds=30), max_backoff=timedelta(minutes=3))
    job = added(database)
    waits = []

    for _ in range(retry.attempts - 1):
        job = fail(database, job, now=T0, retry=retry)
        assert job.state is JobState.FAILED and job.not_before is not None
        waits.append((datetime.fromisoformat(job.not_before) - T0).total_seconds())
    job = fail(database, job, now=T0, retry=retry)

    assert waits == [30, 60, 120, 180, 180, 180]
    assert (job.state, job.attempts, job.not_before) == (JobState.DEAD, 7, None)


def test_after_its_last_attempt_a_job_is_dead_with_its_error_and_the_end_of_stderr(
    database: sqlite3.Connection,
) -> None:
    job = added(database)
    stderr = [f"line {number}\n" for number in range(120)]

    for attempt in range(1, RETRY.attempts + 1):
        jobs.mark_running(database, job.id, now=at(attempt * 3600))
        job = jobs.mark_failed(
            database,
            job.id,
            error=f"output is 0.5 s long, the source 1.0 s (try {attempt})",
            stderr_tail=stderr,
            retry=RETRY,
            now=at(attempt * 3600),
        )

    assert job.state is JobState.DEAD
    assert job.attempts == RETRY.attempts
    assert job.error == "output is 0.5 s long, the source 1.0 s (try 3)"
    assert job.stderr_tail is not None
    assert job.stderr_tail.splitlines() == [f"line {number}" for number in range(70, 120)]
    assert job.not_before is None
    assert jobs.get(database, job.id) == job
    assert jobs.next_runnable(database, now=at(10**7), library_order=["tv"]) is None


@pytest.mark.parametrize(
    "stderr, stored",
    [
        pytest.param(["a\r\n", "b\n", "c"], "a\nb\nc", id="line-ends-are-not-doubled"),
        pytest.param(["first\nsecond", "third"], "first\nsecond\nthird", id="a-chunk-of-lines-counts-line-by-line"),
        pytest.param("one\ntwo\n", "one\ntwo", id="a-whole-text-is-taken-as-lines-not-characters"),
        pytest.param(["", "after a blank"], "\nafter a blank", id="blank-lines-are-kept"),
        pytest.param([], None, id="no-stderr-stores-nothing"),
        pytest.param([f"{n}\n" for n in range(60)], "\n".join(str(n) for n in range(10, 60)), id="at-most-50-lines"),
    ],
)
def test_the_stderr_kept_is_its_last_lines(
    database: sqlite3.Connection, stderr: list[str] | str, stored: str | None
) -> None:
    job = added(database)
    jobs.mark_running(database, job.id, now=T0)

    failed = jobs.mark_failed(database, job.id, error="exit 3", stderr_tail=stderr, retry=RETRY, now=T0)

    assert failed.stderr_tail == stored


def test_progress_is_recorded_while_the_job_runs(database: sqlite3.Connection) -> None:
    job = added(database)
    jobs.mark_running(database, job.id, now=T0)
    assert jobs.get(database, job.id).progress == 0  # type: ignore[union-attr]

    jobs.record_progress(database, job.id, progress=48.5, now=at(5))
    running = jobs.get(database, job.id)
    assert running is not None
    assert (running.progress, running.updated_at) == (48.5, "2024-05-01T12:00:05.000000+00:00")

    jobs.record_progress(database, job.id, progress=100.4, now=at(6))  # a rounding overshoot
    assert jobs.get(database, job.id).progress == 100  # type: ignore[union-attr]

    done = jobs.mark_done(database, job.id, now=at(7))
    jobs.record_progress(database, job.id, progress=10, now=at(8))  # a late tick after the end
    assert jobs.get(database, job.id) == done
    assert done.progress == 100

    with pytest.raises(ValueError, match="finite"):
        jobs.record_progress(database, job.id, progress=float("nan"), now=at(9))


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(JobState.RUNNING, id="a-running-job-cannot-start-twice"),
        pytest.param(JobState.DONE, id="a-done-job-cannot-start"),
        pytest.param(JobState.DEAD, id="a-dead-job-cannot-start-without-a-retry"),
        pytest.param(JobState.CANCELLED, id="a-cancelled-job-cannot-start"),
    ],
)
def test_only_a_queued_or_failed_job_starts(database: sqlite3.Connection, state: JobState) -> None:
    job = bring(database, added(database), state)

    with pytest.raises(JobStateError, match=f"job {job.id} is {state}; only a queued or failed job can start"):
        jobs.mark_running(database, job.id, now=at(1))

    assert jobs.get(database, job.id) == job


def test_an_unknown_job_is_named_in_the_error(database: sqlite3.Connection) -> None:
    for change in (
        lambda: jobs.mark_running(database, 999, now=T0),
        lambda: jobs.mark_done(database, 999, now=T0),
        lambda: jobs.mark_failed(database, 999, error="x", stderr_tail=[], retry=RETRY, now=T0),
        lambda: jobs.cancel(database, 999, now=T0),
        lambda: jobs.retry(database, 999, now=T0),
    ):
        with pytest.raises(JobNotFound, match="there is no job 999"):
            change()


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(JobState.QUEUED, id="a-queued-job-cannot-finish"),
        pytest.param(JobState.FAILED, id="a-failed-job-cannot-finish-before-it-runs-again"),
        pytest.param(JobState.CANCELLED, id="a-job-cancelled-while-encoding-cannot-finish"),
    ],
)
def test_only_a_running_job_finishes_or_fails(database: sqlite3.Connection, state: JobState) -> None:
    job = bring(database, added(database), state)

    with pytest.raises(JobStateError, match="only a running job can finish"):
        jobs.mark_done(database, job.id, now=at(1))
    with pytest.raises(JobStateError, match="only a running job can fail"):
        jobs.mark_failed(database, job.id, error="x", stderr_tail=[], retry=RETRY, now=at(1))

    assert jobs.get(database, job.id) == job


def test_a_job_finishes_in_the_same_transaction_as_its_ledger_entry(database: sqlite3.Connection) -> None:
    job = bring(database, added(database), JobState.RUNNING)
    entry = LedgerEntry("tv", job.rel_path, job.fingerprint, 100, 1, job.preset_hash, job.output_path)

    with pytest.raises(OSError, match="disk full"), transaction(database):  # e.g. publishing failed
        ledger.record(database, entry, encoded_at=T0.isoformat())
        jobs.mark_done(database, job.id, now=at(1))
        raise OSError("disk full")

    assert jobs.get(database, job.id) == job
    assert ledger.load_entries(database) == ()

    with transaction(database):
        ledger.record(database, entry, encoded_at=T0.isoformat())
        done = jobs.mark_done(database, job.id, now=at(2))

    assert jobs.get(database, job.id) == done
    assert done.state is JobState.DONE
    assert ledger.load_entries(database) == (entry,)


def test_running_jobs_go_back_to_the_queue_after_a_crash(database: sqlite3.Connection) -> None:
    retried = fail(database, added(database, "a.mkv"))
    first = jobs.mark_running(database, retried.id, now=at(40))
    jobs.record_progress(database, first.id, progress=60, now=at(50))
    second = bring(database, added(database, "b.mkv"), JobState.RUNNING)
    queued = added(database, "c.mkv")
    dead = bring(database, added(database, "d.mkv"), JobState.DEAD)

    requeued = jobs.requeue_running(database, now=at(60))

    assert [(job.id, job.state, job.attempts, job.progress) for job in requeued] == [
        (first.id, JobState.QUEUED, 1, None),  # the interrupted try is not counted as a failure
        (second.id, JobState.QUEUED, 0, None),
    ]
    assert jobs.get(database, queued.id) == queued
    assert jobs.get(database, dead.id) == dead
    assert jobs.next_runnable(database, now=at(60), library_order=["tv"]) == requeued[0]
    assert jobs.requeue_running(database, now=at(61)) == []


@pytest.mark.parametrize(
    "state, cancellable",
    [
        pytest.param(JobState.QUEUED, True, id="a-queued-job-can-be-cancelled"),
        pytest.param(JobState.RUNNING, True, id="a-running-job-can-be-cancelled"),
        pytest.param(JobState.FAILED, True, id="a-job-waiting-to-retry-can-be-cancelled"),
        pytest.param(JobState.DONE, False, id="a-done-job-cannot-be-cancelled"),
        pytest.param(JobState.DEAD, False, id="a-dead-job-cannot-be-cancelled"),
        pytest.param(JobState.CANCELLED, False, id="a-cancelled-job-cannot-be-cancelled-again"),
    ],
)
def test_cancelling(database: sqlite3.Connection, state: JobState, cancellable: bool) -> None:
    job = bring(database, added(database), state)

    if cancellable:
        cancelled = jobs.cancel(database, job.id, now=at(5))
        assert (cancelled.state, cancelled.not_before, cancelled.progress) == (JobState.CANCELLED, None, None)
        assert jobs.next_runnable(database, now=at(10**6), library_order=["tv"]) is None
    else:
        with pytest.raises(JobStateError, match="only a queued, running or failed job can be cancelled"):
            jobs.cancel(database, job.id, now=at(5))
        assert jobs.get(database, job.id) == job


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(JobState.DEAD, id="a-dead-job-is-retried-from-scratch"),
        pytest.param(JobState.FAILED, id="a-failed-job-is-retried-now-without-its-backoff"),
        pytest.param(JobState.CANCELLED, id="a-cancelled-job-is-retried"),
    ],
)
def test_an_operator_retry_queues_the_job_with_no_attempts_counted(
    database: sqlite3.Connection, state: JobState
) -> None:
    job = bring(database, fail(database, added(database)), state) if state is JobState.CANCELLED else None
    job = job or bring(database, added(database), state)
    assert job.error == "HandBrakeCLI exited with 3"

    retried = jobs.retry(database, job.id, now=at(7200))

    assert (retried.state, retried.attempts, retried.not_before) == (JobState.QUEUED, 0, None)
    assert retried.error == "HandBrakeCLI exited with 3"  # kept until it runs
    assert jobs.next_runnable(database, now=at(7200), library_order=["tv"]) == retried
    running = jobs.mark_running(database, job.id, now=at(7201))
    assert running.error is running.stderr_tail is None


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(JobState.QUEUED, id="a-queued-job-needs-no-retry"),
        pytest.param(JobState.RUNNING, id="a-running-job-cannot-be-retried"),
        pytest.param(JobState.DONE, id="a-done-job-cannot-be-retried"),
    ],
)
def test_only_dead_failed_or_cancelled_jobs_are_retried(database: sqlite3.Connection, state: JobState) -> None:
    job = bring(database, added(database), state)

    with pytest.raises(JobStateError, match="only a dead, failed or cancelled job can be retried"):
        jobs.retry(database, job.id, now=at(1))

    assert jobs.get(database, job.id) == job


def test_a_retry_never_makes_two_waiting_jobs_for_one_file(database: sqlite3.Connection) -> None:
    old = bring(database, added(database, fingerprint="100:old"), JobState.DEAD)
    new = added(database, fingerprint="200:new", now=at(1))

    refusal = f"job {old.id} cannot be retried: job {new.id} for the same file is queued"
    with pytest.raises(JobStateError, match=refusal):
        jobs.retry(database, old.id, now=at(2))

    assert jobs.get(database, old.id) == old


def test_retrying_the_dead_requeues_the_latest_dead_job_of_each_file(database: sqlite3.Connection) -> None:
    alone = bring(database, added(database, "alone.mkv"), JobState.DEAD)
    twice_old = bring(database, added(database, "twice.mkv", fingerprint="1:old"), JobState.DEAD)
    twice_new = bring(database, added(database, "twice.mkv", fingerprint="2:new"), JobState.DEAD)
    fixed_old = bring(database, added(database, "fixed.mkv", fingerprint="1:old"), JobState.DEAD)
    bring(database, added(database, "fixed.mkv", fingerprint="2:new"), JobState.DONE)
    failed = bring(database, added(database, "failed.mkv"), JobState.FAILED)
    before = {job.id: job for job in jobs.list_jobs(database)}

    requeued = jobs.retry_dead(database, now=at(9000))

    assert [job.id for job in requeued] == [alone.id, twice_new.id]
    assert all(job.state is JobState.QUEUED and job.attempts == 0 for job in requeued)
    after = {job.id: job for job in jobs.list_jobs(database)}
    unchanged = set(before) - {alone.id, twice_new.id}
    assert {job_id: after[job_id] for job_id in unchanged} == {job_id: before[job_id] for job_id in unchanged}
    assert after[twice_old.id].state is after[fixed_old.id].state is JobState.DEAD  # superseded content
    assert after[failed.id].state is JobState.FAILED
    assert jobs.retry_dead(database, now=at(9001)) == []


def test_jobs_are_listed_and_counted_by_state_and_library(database: sqlite3.Connection) -> None:
    queued = added(database, "a.mkv")
    dead = bring(database, added(database, "b.mkv"), JobState.DEAD)
    film = bring(database, added(database, "Film.mkv", library="movies"), JobState.DONE)

    assert jobs.list_jobs(database) == [queued, dead, film]
    assert jobs.list_jobs(database, state=JobState.DEAD) == [dead]
    assert jobs.list_jobs(database, library="movies") == [film]
    assert jobs.list_jobs(database, state=JobState.DEAD, library="movies") == []
    assert jobs.counts(database) == {
        JobState.QUEUED: 1,
        JobState.RUNNING: 0,
        JobState.DONE: 1,
        JobState.FAILED: 0,
        JobState.DEAD: 1,
        JobState.CANCELLED: 0,
    }


@pytest.mark.parametrize(
    "column, value",
    [
        pytest.param("state", "paused", id="a-state-outside-the-six-is-refused"),
        pytest.param("attempts", -1, id="negative-attempts-are-refused"),
        pytest.param("progress", 100.5, id="progress-over-100-percent-is-refused"),
        pytest.param("progress", -0.1, id="negative-progress-is-refused"),
        pytest.param("library", None, id="a-job-without-a-library-is-refused"),
    ],
)
def test_the_schema_still_refuses_impossible_jobs(database: sqlite3.Connection, column: str, value: object) -> None:
    job = added(database)
    statements = {
        "state": "UPDATE jobs SET state = ? WHERE id = ?",
        "attempts": "UPDATE jobs SET attempts = ? WHERE id = ?",
        "progress": "UPDATE jobs SET progress = ? WHERE id = ?",
        "library": "UPDATE jobs SET library = ? WHERE id = ?",
    }

    with pytest.raises(StoreError, match=r"CHECK|NOT NULL"):
        database.execute(statements[column], (value, job.id))

    assert jobs.get(database, job.id) == job


def test_the_schema_still_refuses_a_second_row_for_one_identity(database: sqlite3.Connection) -> None:
    job = added(database)

    with pytest.raises(StoreError, match="UNIQUE"):
        database.execute(
            "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, 'new', ?, ?)",
            (job.library, job.rel_path, job.fingerprint, job.preset_hash, "TV/x.mkv", job.created_at, job.created_at),
        )


def test_times_are_stored_in_utc_and_a_naive_time_is_refused(database: sqlite3.Connection) -> None:
    two_hours_east = timezone(timedelta(hours=2))

    job = add(database, now=datetime(2024, 5, 1, 14, 0, 0, 250_000, tzinfo=two_hours_east))

    assert job is not None
    assert job.created_at == "2024-05-01T12:00:00.250000+00:00"
    with pytest.raises(ValueError, match="aware"):
        add(database, "b.mkv", now=datetime(2024, 5, 1, 12, 0))  # noqa: DTZ001 - the mistake under test
    assert len(jobs.list_jobs(database)) == 1


def test_a_queue_from_the_previous_schema_keeps_working(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "hb2r.db", isolation_level=None)
    for script in MIGRATIONS[:2]:
        connection.executescript(script)
    connection.execute("PRAGMA user_version = 2")
    connection.execute(
        "INSERT INTO jobs (library, rel_path, fingerprint, preset_hash, output_path, reason, created_at, updated_at) "
        "VALUES ('tv', 'a.mkv', '1:a', 'p1', 'TV/a.mkv', 'new', ?, ?)",
        (T0.isoformat(timespec="microseconds"),) * 2,
    )
    connection.close()

    database = open_database(tmp_path)
    try:
        job = jobs.next_runnable(database, now=at(1), library_order=["tv"])
        assert job is not None and job.rel_path == "a.mkv"
        assert add(database, "a.mkv", fingerprint="1:a") is None
    finally:
        database.close()
