"""The queue read a page and a count at a time, as every store must keep it (issue 12: a million rows).

- Pages: newest first by id, each page below the last one's id (a keyset cursor): walking them
  shows every job that was there when the walk began exactly once, in a stable order, while
  new jobs are queued meanwhile (they are newer than the cursor: the next walk shows them).
- Counts: `counts`, `counts_by_library` and `bytes_by_library` are read from tallies the store
  keeps in the transaction that changes a row; after every kind of change they equal a count
  of the rows themselves, before and after `fold_tallies` (PostgreSQL's pending changes).
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from agent.config.models import Retry
from agent.domain import LedgerEntry
from agent.store.jobs import CancelledBy, Job, JobState
from agent.store.ledger import LibraryBytes
from agent.store.protocol import Store
from tests.support.jobs import new_job

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RETRY = Retry(attempts=2, backoff=timedelta(seconds=30), max_backoff=timedelta(hours=1))
LEASE = timedelta(seconds=30)


def added(store: Store, rel_path: str, *, library: str = "tv", fingerprint: str | None = None) -> Job:
    job = store.enqueue(**new_job(rel_path, library=library, fingerprint=fingerprint or f"f:{rel_path}"))
    assert job is not None
    return job


def entry(library: str, rel_path: str, *, size: int = 1000, output_path: str | None = None) -> LedgerEntry:
    return LedgerEntry(
        library, rel_path, f"f:{rel_path}", size, 1, "p1", output_path or f"{library.upper()}/{rel_path}"
    )


def walk(store: Store, *, limit: int, between: list[str] | None = None, **only: object) -> list[int]:
    """Return the ids of every page in turn, following the cursor; queue a job from `between` after each page."""
    seen: list[int] = []
    before: int | None = None
    while True:
        page = store.page(limit=limit, before_id=before, **only)  # type: ignore[arg-type]
        seen += [job.id for job in page]
        if between:
            library = str(only.get("library") or "tv")
            added(store, between.pop(0), library=library)
        if len(page) < limit:
            return seen
        before = page[-1].id


def mixed(store: Store, count: int) -> list[Job]:
    """Queue count jobs in tv and movies; cancel every 5th, kill every 7th (two failures); return them as they are."""
    made = [added(store, f"e{index:03d}.mkv", library="movies" if index % 3 == 0 else "tv") for index in range(count)]
    for job in made[::5]:
        store.cancel(job.id, now=T0, by=CancelledBy.OPERATOR)
    for job in [job for index, job in enumerate(made) if index % 7 == 1 and index % 5 != 0]:
        for _ in range(RETRY.attempts):
            store.mark_running(job.id, now=T0)
            store.mark_failed(job.id, error="exit 3", stderr_tail=[], retry=RETRY, now=T0)
    return [found for job in made if (found := store.get_job(job.id)) is not None]


@pytest.mark.parametrize(
    "only",
    [
        pytest.param({}, id="every-job"),
        pytest.param({"state": JobState.DEAD}, id="one-state"),
        pytest.param({"library": "movies"}, id="one-library"),
        pytest.param({"state": JobState.QUEUED, "library": "tv"}, id="state-and-library"),
    ],
)
def test_pages_show_every_job_once_newest_first_while_jobs_are_queued(store: Store, only: dict[str, object]) -> None:
    made = mixed(store, 60)
    expected = sorted(
        (job.id for job in made if all(getattr(job, key) == value for key, value in only.items())), reverse=True
    )

    walked = walk(store, limit=4, between=[f"new{index:03d}.mkv" for index in range(40)], **only)

    assert walked == expected
    assert walk(store, limit=4, **only)[-len(expected) :] == expected  # the same order again, the new ones first


def test_a_page_is_the_same_asked_twice_and_ends_without_an_empty_page(store: Store) -> None:
    mixed(store, 12)

    first = store.page(limit=6)
    again = store.page(limit=6)
    second = store.page(limit=6, before_id=first[-1].id)

    assert first == again
    assert [job.id for job in first + second] == list(range(12, 0, -1))
    assert store.page(limit=6, before_id=second[-1].id) == []


def rows_by_library_and_state(store: Store) -> dict[str, dict[str, int]]:
    counted = Counter((job.library, str(job.state)) for job in store.list_jobs())
    result: dict[str, dict[str, int]] = {}
    for (library, state), number in counted.items():
        result.setdefault(library, {})[state] = number
    return result


def ledger_bytes(store: Store) -> dict[str, LibraryBytes]:
    result: dict[str, LibraryBytes] = {}
    for found in store.load_ledger().entries:
        size = store.output_size(library=found.library, rel_path=found.rel_path)
        was = result.get(found.library, LibraryBytes(0, 0, 0))
        result[found.library] = LibraryBytes(
            was.files + 1, was.input_bytes + (found.size if size is not None else 0), was.output_bytes + (size or 0)
        )
    return result


def assert_counts_agree(store: Store, after: str) -> None:
    by_library = rows_by_library_and_state(store)
    totals = Counter(str(job.state) for job in store.list_jobs())
    for moment in ("", " and a fold of the changes into the tallies"):
        if moment:
            store.fold_tallies()  # PostgreSQL: its changes move into the tallies; the sums stay
        assert store.counts_by_library() == by_library, after + moment
        assert store.counts() == {state: totals.get(str(state), 0) for state in JobState}, after + moment
        assert store.bytes_by_library() == ledger_bytes(store), after + moment
    assert not store.fold_tallies(), "nothing is left to fold"


def test_counts_agree_with_the_rows_after_every_kind_of_change(store: Store) -> None:
    check = lambda after: assert_counts_agree(store, after)  # noqa: E731
    check("nothing yet")
    added(store, "a.mkv")
    other = added(store, "b.mkv")
    film = added(store, "c.mkv", library="movies")
    check("queued")
    added(store, "a.mkv", fingerprint="changed")
    check("a new identity cancels the old queued job")
    store.mark_running(other.id, now=T0)
    store.record_progress(other.id, progress=50.0, now=T0)
    check("running")
    store.mark_failed(other.id, error="exit 3", stderr_tail=[], retry=RETRY, now=T0)
    check("failed")
    store.mark_running(other.id, now=T0)
    store.mark_failed(other.id, error="exit 3", stderr_tail=[], retry=RETRY, now=T0)
    check("dead")
    store.retry(other.id, now=T0)
    check("retried")
    store.cancel(film.id, now=T0, by=CancelledBy.OPERATOR)
    check("cancelled by an operator")
    store.retry(film.id, now=T0)
    store.mark_running(film.id, now=T0)
    store.requeue_running(now=T0)
    check("requeued after a crash")
    store.mark_running(film.id, now=T0)
    with store.transaction():
        store.record_output(entry("movies", "c.mkv"), encoded_at=T0.isoformat(), output_size=300)
        store.mark_done(film.id, now=T0)
    check("done with its ledger row")
    assert added(store, "c.mkv", library="movies").id == film.id
    check("a done job queued again (its output went missing)")
    claim = store.claim("alpha", libraries=["movies"], lease=LEASE, library_order=["movies"])
    assert claim is not None
    store.heartbeat(claim.job.id, claim.token, progress=10.0, lease=LEASE)
    store.release_claim(claim.job.id, claim.token, reason="mount missing")
    check("claimed and released")
    claim = store.claim("alpha", libraries=["movies"], lease=timedelta(milliseconds=1), library_order=["movies"])
    assert claim is not None
    deadline = time.monotonic() + 5
    while not store.expire_leases(host_loss_cap=3):
        assert time.monotonic() < deadline, "the lease did not expire"
        time.sleep(0.01)
    check("a lease expired")
    claim = store.claim("alpha", libraries=["movies"], lease=LEASE, library_order=["movies"])
    assert claim is not None
    store.finish_claimed(
        claim.job.id, claim.token, entry("movies", "c.mkv", size=2000), encoded_at=T0.isoformat(), output_size=500,
        now=T0,
    )  # fmt: skip
    check("finished under a lease, its ledger row replaced")
    store.mark_running(other.id, now=T0)
    store.mark_failed_temporarily(other.id, error="disk full", stderr_tail=[], retry=RETRY, now=T0)
    check("failed for a while")
    store.mark_running(other.id, now=T0)
    store.mark_failed_permanently(other.id, error="no such preset", stderr_tail=[], now=T0)
    check("failed for good")
    store.retry_dead(now=T0)
    check("every dead job retried")
    store.record_output(entry("tv", "x.mkv", size=7000), encoded_at=T0.isoformat())
    check("a ledger row of unknown output size")
    store.set_output_size("TV/x.mkv", 900)
    check("its output size found")
    store.carry_over(output_path="TV/x.mkv", library="anime", rel_path="x.mkv", size=7100, mtime_ns=2)
    check("carried over to a renamed library")
    store.forget(library="anime", rel_path="x.mkv")
    check("forgotten")
    store.forget_output("MOVIES/c.mkv")
    check("an output taken over")
