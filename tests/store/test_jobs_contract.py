"""The job queue as every store must keep it: what a user of `hb2r jobs`, `hb2r retry` and the
API sees, whatever database holds it. Time is passed in (`at(seconds)`), so no test sleeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.config.models import Retry
from agent.store.jobs import CancelledBy, Job, JobNotFound, JobState, JobStateError
from agent.store.order import Order, QueueOrder
from agent.store.protocol import Store
from tests.support.jobs import new_job

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RETRY = Retry(attempts=3, backoff=timedelta(seconds=30), max_backoff=timedelta(hours=1))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def add(store: Store, rel_path: str = "Show/E01.mkv", **fields: Any) -> Job | None:
    """Queue rel_path (fields: new_job's options); return the job, or None if it was not queued."""
    return store.enqueue(**new_job(rel_path, **fields))


def added(store: Store, rel_path: str = "Show/E01.mkv", **identity: str) -> Job:
    job = add(store, rel_path, **identity)  # type: ignore[arg-type]
    assert job is not None
    return job


def fail(store: Store, job: Job, *, now: datetime = T0) -> Job:
    store.mark_running(job.id, now=now)
    return store.mark_failed(
        job.id, error="HandBrakeCLI exited with 3", stderr_tail=["x264: broken"], retry=RETRY, now=now
    )


def dead(store: Store, job: Job) -> Job:
    for attempt in range(RETRY.attempts):
        job = fail(store, job, now=at(attempt * 7200))
    assert job.state is JobState.DEAD
    return job


# --- enqueue


def test_a_file_asked_for_twice_gets_one_job(store: Store) -> None:
    first = added(store)

    assert add(store, now=at(60)) is None
    assert [job.id for job in store.list_jobs()] == [first.id]
    assert first.state is JobState.QUEUED and first.attempts == 0


def test_a_new_content_of_a_file_supersedes_its_waiting_job(store: Store) -> None:
    old = added(store, fingerprint="100:a")
    new = added(store, fingerprint="200:b")

    assert store.get_job(old.id) == old._replace(
        state=JobState.CANCELLED, cancelled_by=str(CancelledBy.ENGINE), updated_at=new.updated_at, progress=None
    )
    assert store.get_job(new.id) == new


def test_a_job_the_engine_cancelled_is_queued_again_when_wanted_again_keeping_its_attempts(store: Store) -> None:
    job = fail(store, added(store))
    store.cancel(job.id, now=at(10), by=CancelledBy.ENGINE)

    again = add(store, now=at(20))

    assert again is not None and again.id == job.id
    assert (again.state, again.attempts, again.cancelled_by) == (JobState.QUEUED, 1, None)


def test_a_job_an_operator_cancelled_stays_cancelled_until_retried(store: Store) -> None:
    job = added(store)
    store.cancel(job.id, now=at(10), by=CancelledBy.OPERATOR)

    assert add(store, now=at(20)) is None
    kept = store.get_job(job.id)
    assert kept is not None and kept.state is JobState.CANCELLED and kept.cancelled_by == "operator"
    assert [job.id for job in store.operator_cancelled()] == [job.id]
    assert store.retry(job.id, now=at(30)).state is JobState.QUEUED
    assert store.operator_cancelled() == []


def test_a_done_job_asked_for_again_is_queued_afresh(store: Store) -> None:
    job = added(store)
    fail(store, job)
    store.mark_running(job.id, now=at(3600))
    store.mark_done(job.id, now=at(3700))

    again = add(store, now=at(4000))  # the output went missing

    assert again is not None and again.id == job.id
    assert (again.state, again.attempts) == (JobState.QUEUED, 0)


# --- what runs next


def test_the_next_job_is_the_oldest_of_the_first_library_in_the_given_order(store: Store) -> None:
    added(store, "a.mkv", library="movies")
    tv_old = added(store, "b.mkv", library="tv")
    added(store, "c.mkv", library="tv")

    assert store.next_runnable(now=at(1), library_order=["tv", "movies"]) == tv_old
    picked = store.next_runnable(now=at(1), library_order=["movies", "tv"])
    assert picked is not None and picked.library == "movies"


def test_libraries_left_out_of_the_order_come_after_it_oldest_first(store: Store) -> None:
    other = added(store, "a.mkv", library="other", now=at(0))
    added(store, "b.mkv", library="zzz", now=at(5))
    listed = added(store, "c.mkv", library="tv", now=at(10))

    assert store.next_runnable(now=at(20), library_order=["tv"]) == listed
    store.mark_running(listed.id, now=at(21))
    assert store.next_runnable(now=at(22), library_order=["tv"]) == other


@pytest.mark.parametrize(
    "order, first",
    [
        pytest.param("oldest", "old-medium.mkv", id="oldest-first-by-default"),
        pytest.param("newest", "new-small.mkv", id="newest-first"),
        pytest.param("smallest", "new-small.mkv", id="smallest-source-first"),
        pytest.param("largest", "mid-large.mkv", id="largest-source-first"),
    ],
)
def test_a_library_starts_its_jobs_in_its_order(store: Store, order: Order, first: str) -> None:
    add(store, "old-medium.mkv", fingerprint="5000:a", now=at(0))
    add(store, "mid-large.mkv", fingerprint="90000:b", now=at(1))
    add(store, "new-small.mkv", fingerprint="20:c", now=at(2))

    picked = store.next_runnable(now=at(3), library_order=["tv"], order=QueueOrder(within={"tv": order}))

    assert picked is not None and picked.rel_path == first


def test_saving_starts_the_largest_estimated_saving_first_whatever_the_size(store: Store) -> None:
    for name, fingerprint, saving in (
        ("large-hevc.mkv", "90000:a", 0),
        ("mid.mkv", "5000:b", 2000),
        ("s.mkv", "20:c", 8),
    ):
        store.enqueue(
            library="tv", rel_path=name, fingerprint=fingerprint, preset_hash="p1", output_path=f"TV/{name}",
            reason="new", now=at(0), saving=saving,
        )  # fmt: skip
    order = QueueOrder(within={"tv": "saving"})

    first = store.next_runnable(now=at(1), library_order=["tv"], order=order)
    assert first is not None and first.rel_path == "mid.mkv"
    store.mark_running(first.id, now=at(2))
    second = store.next_runnable(now=at(3), library_order=["tv"], order=order)
    assert second is not None and second.rel_path == "s.mkv"


def test_libraries_take_turns_as_listed_or_mixed_by_the_top_level_order(store: Store) -> None:
    add(store, "big.mkv", library="tv", fingerprint="90000:a", now=at(0))
    add(store, "small.mkv", library="movies", fingerprint="10:b", now=at(1))

    listed = store.next_runnable(now=at(2), library_order=["tv", "movies"], order=QueueOrder(default="smallest"))
    mixed = store.next_runnable(
        now=at(2), library_order=["tv", "movies"], order=QueueOrder(default="smallest", across="mixed")
    )

    assert listed is not None and listed.rel_path == "big.mkv"  # tv is listed first
    assert mixed is not None and mixed.rel_path == "small.mkv"  # the smallest of every library's next job


def test_a_job_moved_to_the_front_goes_first_across_libraries_the_latest_moved_first(store: Store) -> None:
    added(store, "a.mkv", library="tv")
    second = added(store, "b.mkv", library="movies")
    third = added(store, "c.mkv", library="movies")

    store.move_to_front(second.id, now=at(1))
    store.move_to_front(third.id, now=at(2))

    assert store.next_runnable(now=at(3), library_order=["tv", "movies"]) == store.get_job(third.id)
    store.mark_running(third.id, now=at(4))
    assert store.next_runnable(now=at(5), library_order=["tv", "movies"]) == store.get_job(second.id)
    # a library this host may not take from is not started for its fronted job
    assert store.next_runnable(now=at(5), library_order=["tv"], exclude_libraries={"movies"}).rel_path == "a.mkv"


def test_a_failed_job_moved_to_the_front_runs_without_waiting_out_its_backoff(store: Store) -> None:
    job = fail(store, added(store, "a.mkv"), now=at(0))
    added(store, "b.mkv")
    assert store.next_runnable(now=at(1), library_order=["tv"]).rel_path == "b.mkv"  # a.mkv waits 30 s

    store.move_to_front(job.id, now=at(2))

    assert store.next_runnable(now=at(3), library_order=["tv"]) == store.get_job(job.id)


def test_only_a_waiting_job_can_be_moved_to_the_front(store: Store) -> None:
    running = added(store, "a.mkv")
    store.mark_running(running.id, now=at(1))
    gone = dead(store, added(store, "b.mkv"))

    with pytest.raises(JobStateError, match="is running: only a queued or failed job"):
        store.move_to_front(running.id, now=at(2))
    with pytest.raises(JobStateError, match=r"is dead: .* \(retry it first\)"):
        store.move_to_front(gone.id, now=at(2))
    with pytest.raises(JobNotFound, match="there is no job 999"):
        store.move_to_front(999, now=at(2))


def test_a_requeued_job_is_no_longer_at_the_front(store: Store) -> None:
    added(store, "b.mkv")
    job = added(store, "a.mkv")
    store.move_to_front(job.id, now=at(1))
    store.mark_running(job.id, now=at(2))
    store.mark_done(job.id, now=at(3))
    again = add(store, "a.mkv", now=at(4))  # its output went missing: encoded afresh, in the usual order

    assert again is not None and again.id == job.id
    assert store.next_runnable(now=at(5), library_order=["tv"]).rel_path == "b.mkv"


def test_an_excluded_library_starts_nothing(store: Store) -> None:
    added(store, "a.mkv", library="tv")

    assert store.next_runnable(now=at(1), library_order=["tv"], exclude_libraries={"tv"}) is None


def test_no_second_encode_of_a_file_starts_while_one_runs(store: Store) -> None:
    running = added(store, fingerprint="100:a")
    store.mark_running(running.id, now=at(1))
    added(store, fingerprint="200:b", now=at(2))  # the file changed during the encode

    assert store.next_runnable(now=at(3), library_order=["tv"]) is None
    store.cancel(running.id, now=at(4))
    waiting = store.next_runnable(now=at(5), library_order=["tv"])
    assert waiting is not None and waiting.fingerprint == "200:b"


def test_a_failed_job_waits_out_its_backoff_and_is_dead_after_the_last_attempt(store: Store) -> None:
    job = fail(store, added(store), now=T0)

    assert job.state is JobState.FAILED and job.attempts == 1 and job.error == "HandBrakeCLI exited with 3"
    assert store.next_runnable(now=at(29), library_order=["tv"]) is None
    assert store.next_runnable(now=at(30), library_order=["tv"]) == job
    job = fail(store, job, now=at(30))
    assert job.attempts == 2 and job.not_before == at(90).isoformat(timespec="microseconds")  # 30 s × 2
    job = fail(store, job, now=at(90))
    assert job.state is JobState.DEAD and job.not_before is None
    assert store.next_runnable(now=at(100_000), library_order=["tv"]) is None


def test_a_temporary_failure_spends_no_attempt_and_a_permanent_one_is_dead_at_once(store: Store) -> None:
    first, second = added(store, "a.mkv"), added(store, "b.mkv")
    store.mark_running(first.id, now=T0)
    store.mark_running(second.id, now=T0)

    temporary = store.mark_failed_temporarily(first.id, error="disk full", stderr_tail=[], retry=RETRY, now=T0)
    permanent = store.mark_failed_permanently(second.id, error="not ours", stderr_tail=["a", "b"], now=T0)

    assert (temporary.state, temporary.attempts) == (JobState.FAILED, 0)
    assert temporary.not_before == at(30).isoformat(timespec="microseconds")
    assert (permanent.state, permanent.attempts, permanent.stderr_tail) == (JobState.DEAD, 1, "a\nb")  # its one try


# --- state changes the queue refuses


@pytest.mark.parametrize(
    ("state", "change"),
    [
        pytest.param(JobState.QUEUED, "mark_done", id="a-queued-job-cannot-be-done"),
        pytest.param(JobState.DONE, "mark_running", id="a-done-job-cannot-start"),
        pytest.param(JobState.DONE, "cancel", id="a-done-job-cannot-be-cancelled"),
        pytest.param(JobState.QUEUED, "retry", id="a-queued-job-cannot-be-retried"),
        pytest.param(JobState.QUEUED, "fail", id="a-queued-job-cannot-fail"),
    ],
)
def test_a_change_the_job_state_forbids_is_refused_and_changes_nothing(
    store: Store, state: JobState, change: str
) -> None:
    job = added(store)
    if state is JobState.DONE:
        store.mark_running(job.id, now=T0)
        store.mark_done(job.id, now=T0)
    before = store.get_job(job.id)
    calls = {
        "mark_done": lambda: store.mark_done(job.id, now=at(1)),
        "mark_running": lambda: store.mark_running(job.id, now=at(1)),
        "cancel": lambda: store.cancel(job.id, now=at(1)),
        "retry": lambda: store.retry(job.id, now=at(1)),
        "fail": lambda: store.mark_failed(job.id, error="x", stderr_tail=[], retry=RETRY, now=at(1)),
    }

    with pytest.raises(JobStateError, match=f"job {job.id} is {state}"):
        calls[change]()
    assert store.get_job(job.id) == before


def test_a_change_to_a_job_that_does_not_exist_says_so(store: Store) -> None:
    with pytest.raises(JobNotFound, match="there is no job 42"):
        store.cancel(42, now=T0)
    assert store.get_job(42) is None


def test_a_retry_is_refused_while_another_job_of_the_file_waits(store: Store) -> None:
    old = dead(store, added(store, fingerprint="100:a"))
    newer = added(store, fingerprint="200:b", now=at(50_000))

    with pytest.raises(JobStateError, match=f"job {newer.id} for the same file is queued"):
        store.retry(old.id, now=at(50_001))


def test_retry_dead_requeues_the_dead_but_not_the_superseded(store: Store) -> None:
    superseded = dead(store, added(store, "a.mkv", fingerprint="100:a"))
    later = dead(store, added(store, "a.mkv", fingerprint="200:b", now=at(30_000)))
    alone = dead(store, added(store, "b.mkv"))

    requeued = store.retry_dead(now=at(90_000))

    assert [job.id for job in requeued] == [later.id, alone.id]
    assert all(job.state is JobState.QUEUED and job.attempts == 0 for job in requeued)
    still = store.get_job(superseded.id)
    assert still is not None and still.state is JobState.DEAD


def test_jobs_left_running_go_back_to_the_queue_with_their_attempts(store: Store) -> None:
    job = fail(store, added(store))
    store.mark_running(job.id, now=at(60))
    store.record_progress(job.id, progress=42.0, now=at(61))

    requeued = store.requeue_running(now=at(62))

    assert [(job.id, job.state, job.attempts, job.progress) for job in requeued] == [(job.id, JobState.QUEUED, 1, None)]


def test_progress_is_kept_between_0_and_100_and_only_for_a_running_job(store: Store) -> None:
    running, waiting = added(store, "a.mkv"), added(store, "b.mkv")
    store.mark_running(running.id, now=T0)

    store.record_progress(running.id, progress=140.0, now=at(1))
    store.record_progress(waiting.id, progress=50.0, now=at(1))

    assert [job.progress for job in store.list_jobs()] == [100.0, None]


# --- reading the queue


def test_counts_list_every_state_and_each_library(store: Store) -> None:
    added(store, "a.mkv")
    fail(store, added(store, "b.mkv"))
    added(store, "c.mkv", library="movies")

    counts = store.counts()
    assert counts[JobState.QUEUED] == 2 and counts[JobState.FAILED] == 1 and counts[JobState.DONE] == 0
    assert set(counts) == set(JobState)
    assert store.counts_by_library() == {"tv": {"queued": 1, "failed": 1}, "movies": {"queued": 1}}


def test_lists_filter_by_state_and_library_and_pages_go_newest_first(store: Store) -> None:
    ids = [added(store, f"{n}.mkv").id for n in range(5)]
    movie = added(store, "m.mkv", library="movies")
    fail(store, store.get_job(ids[1]) or pytest.fail("lost"))

    assert [job.id for job in store.list_jobs(state=JobState.FAILED)] == [ids[1]]
    assert [job.id for job in store.list_jobs(library="movies")] == [movie.id]
    assert [job.id for job in store.list_jobs(state=JobState.QUEUED, library="tv")] == [ids[0], *ids[2:]]
    assert [job.id for job in store.page(limit=3)] == [movie.id, ids[4], ids[3]]
    assert [job.id for job in store.page(library="tv", before_id=ids[3], limit=10)] == [ids[2], ids[1], ids[0]]
    assert [job.id for job in store.page(state=JobState.QUEUED, before_id=ids[2], limit=10)] == [ids[0]]


def test_the_unfinished_and_the_waiting_leave_out_what_is_done(store: Store) -> None:
    done, queued = added(store, "a.mkv"), added(store, "b.mkv")
    store.mark_running(done.id, now=T0)
    store.mark_done(done.id, now=T0)
    failed = fail(store, added(store, "c.mkv"))

    assert [job.id for job in store.unfinished()] == [queued.id, failed.id]
    assert sorted(store.waiting()) == [(queued.id, "tv", "b.mkv"), (failed.id, "tv", "c.mkv")]


def test_the_unfinished_jobs_of_some_files_are_read_by_file_not_the_whole_table(store: Store) -> None:
    done, _ = added(store, "Show/a.mkv"), added(store, "Show/b.mkv")
    store.mark_running(done.id, now=T0)
    store.mark_done(done.id, now=T0)
    fail(store, added(store, "Show/c.mkv"))
    added(store, "Show/b.mkv", fingerprint="new content")  # b's earlier job is superseded: cancelled, not done
    added(store, "Show/b.mkv", library="movies")
    added(store, "Show/d.mkv")
    many = [f"Show/{number}.mkv" for number in range(1200)]  # more keys than one query takes

    found = store.unfinished_of_files("tv", ["Show/a.mkv", "Show/b.mkv", "Show/c.mkv", "Gone.mkv", *many])

    wanted = {"Show/b.mkv", "Show/c.mkv"}
    expected = [job for job in store.unfinished() if job.library == "tv" and job.rel_path in wanted]
    assert found == expected and len(found) == 3
    assert store.unfinished_of_files("tv", []) == []


def test_the_change_feed_hands_out_every_change_once_in_order(store: Store) -> None:
    assert store.last_change() == 0
    first = added(store, "a.mkv")
    start = store.last_change()
    second = added(store, "b.mkv", now=at(1))
    store.mark_running(first.id, now=at(-3600))  # the wall clock stepped back: the feed does not care

    changes = store.changed_after(start)

    assert [(job.id, job.state) for _, job in changes] == [(second.id, JobState.QUEUED), (first.id, JobState.RUNNING)]
    numbers = [number for number, _ in changes]
    assert numbers == sorted(numbers) and numbers[0] > start and numbers[-1] == store.last_change()
    assert store.changed_after(numbers[-1]) == []
    assert [job.id for _, job in store.changed_after(start, limit=1)] == [second.id]
