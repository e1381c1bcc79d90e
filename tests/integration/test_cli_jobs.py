"""`hb2r jobs` and `hb2r retry` as real processes on a real state database.

The queue is filled through the store as the engine would; the tests look at what an
operator sees (exit code, output) and, for `retry`, at what the database holds afterwards.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.config.models import Retry
from agent.store import jobs
from agent.store.db import DATABASE_NAME, open_database
from agent.store.jobs import Job, JobState
from tests.support.cli import hb2r
from tests.support.jobs import new_job

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
RETRY = Retry(attempts=2, backoff=timedelta(seconds=30), max_backoff=timedelta(hours=1))
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)

CONFIG = """\
version: 1
paths:
  archive: archive
  state_dir: state
libraries:
  - {name: tv, source: tv, output: TV, preset: tv}
  - {name: movies, source: movies, output: Movies, preset: tv}
presets:
  tv: {handbrake: Fast 1080p30}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    for folder in ("archive", "tv", "movies"):
        (tmp_path / folder).mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG)
    return path


@pytest.fixture
def database(config: Path) -> Iterator[sqlite3.Connection]:
    """The state database, open as a running agent would hold it."""
    connection = open_database(config.parent / "state")
    yield connection
    connection.close()


def enqueue(connection: sqlite3.Connection, rel_path: str, *, library: str = "tv", fingerprint: str = "") -> Job:
    job = jobs.enqueue(
        connection, **new_job(rel_path, library=library, fingerprint=fingerprint, output_path=f"{library}/{rel_path}")
    )
    assert job is not None
    return job


def fail(connection: sqlite3.Connection, job: Job, error: str, *, now: datetime = T0) -> Job:
    jobs.mark_running(connection, job.id, now=now)
    return jobs.mark_failed(connection, job.id, error=error, stderr_tail=["x264 [error]"], retry=RETRY, now=now)


def fill(connection: sqlite3.Connection) -> dict[str, Job]:
    """Queue one job in each interesting state; return them by state name."""
    queued = enqueue(connection, "Show/S01E01.mkv")
    running = enqueue(connection, "Show/S01E02.mkv")
    jobs.mark_running(connection, running.id, now=T0)
    jobs.record_progress(connection, running.id, progress=42.5, now=T0)
    failed = fail(connection, enqueue(connection, "Show/S01E03.mkv"), "HandBrakeCLI exited with 3", now=FAR_FUTURE)
    dead = enqueue(connection, "Film (2020).mkv", library="movies")
    for _ in range(RETRY.attempts):
        dead = fail(connection, dead, "output is 0.5 s long, the source 1.0 s\nsecond line")
    return {"queued": queued, "running": running, "failed": failed, "dead": dead}


def files_in(folder: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.iterdir())}


def test_jobs_lists_every_job_with_what_it_is_waiting_for(config: Path, database: sqlite3.Connection) -> None:
    fill(database)

    finished = hb2r("jobs", str(config))

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines() == [
        "ID  STATE    ATTEMPTS  LIBRARY  PATH             PROGRESS  DETAIL",
        "1   queued   0         tv       Show/S01E01.mkv",
        "2   running  0         tv       Show/S01E02.mkv  42.5%",
        "3   failed   1         tv       Show/S01E03.mkv            "
        "retry after 2999-01-01 00:00:30 UTC: HandBrakeCLI exited with 3",
        "4   dead     2         movies   Film (2020).mkv            output is 0.5 s long, the source 1.0 s",
        "4 jobs: 1 queued, 1 running, 1 failed, 1 dead",
    ]


def test_a_failed_job_past_its_backoff_shows_it_is_due(config: Path, database: sqlite3.Connection) -> None:
    fail(database, enqueue(database, "Show/S01E01.mkv"), "HandBrakeCLI exited with 3", now=T0)

    finished = hb2r("jobs", str(config))

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines()[1].endswith("due since 2024-05-01 12:00:30 UTC: HandBrakeCLI exited with 3")


@pytest.mark.parametrize(
    "options, expected_ids, summary",
    [
        pytest.param(["--state", "dead"], [4], "1 job: 1 dead", id="the-state-filter-shows-only-dead-jobs"),
        pytest.param(["--library", "tv"], [1, 2, 3], "3 jobs: 1 queued, 1 running, 1 failed", id="one-library"),
        pytest.param(["--state", "failed", "--library", "tv"], [3], "1 job: 1 failed", id="both-filters-together"),
    ],
)
def test_jobs_filters_by_state_and_library(
    config: Path, database: sqlite3.Connection, options: list[str], expected_ids: list[int], summary: str
) -> None:
    fill(database)

    finished = hb2r("jobs", *options, str(config))

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert [int(line.split()[0]) for line in lines[1:-1]] == expected_ids
    assert lines[-1] == summary


def test_jobs_says_so_when_no_job_matches(config: Path, database: sqlite3.Connection) -> None:
    fill(database)

    finished = hb2r("jobs", "--state", "cancelled", "--library", "movies", str(config))

    assert finished.returncode == 0
    assert finished.stdout == "No cancelled jobs in library movies.\n"


def test_jobs_json_has_every_field_of_every_job(config: Path, database: sqlite3.Connection) -> None:
    made = fill(database)

    finished = hb2r("jobs", "--json", str(config))

    assert finished.returncode == 0, finished.stderr
    listed = json.loads(finished.stdout)["jobs"]
    assert [job["state"] for job in listed] == ["queued", "running", "failed", "dead"]
    dead = listed[3]
    assert dead == {**dead, "id": made["dead"].id, "attempts": 2, "library": "movies", "rel_path": "Film (2020).mkv"}
    assert dead["error"] == "output is 0.5 s long, the source 1.0 s\nsecond line"
    assert dead["stderr_tail"] == "x264 [error]"
    assert listed[1]["progress"] == 42.5
    assert listed[2]["not_before"] == "2999-01-01T00:00:30.000000+00:00"
    assert set(dead) == {*Job._fields, "facts_error"} and dead["facts_error"] is None


def test_jobs_on_a_missing_database_says_there_are_none_and_creates_nothing(config: Path) -> None:
    finished = hb2r("jobs", str(config))
    as_json = hb2r("jobs", "--json", str(config))

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.startswith("No jobs: there is no state database at ")
    assert as_json.returncode == 0
    assert json.loads(as_json.stdout) == {"held_back": [], "jobs": [], "next_before": None}
    assert not (config.parent / "state").exists()


def test_jobs_writes_nothing_to_a_stopped_agents_database(config: Path) -> None:
    connection = open_database(config.parent / "state")
    fill(connection)
    connection.close()
    before = files_in(config.parent / "state")
    assert list(before) == [DATABASE_NAME]

    finished = hb2r("jobs", str(config))

    assert finished.returncode == 0, finished.stderr
    assert files_in(config.parent / "state") == before  # no -wal, no -shm, same bytes


def test_jobs_sees_what_a_running_agent_just_wrote(config: Path, database: sqlite3.Connection) -> None:
    fill(database)
    latest = enqueue(database, "Show/S01E04.mkv")  # committed, still only in the agent's WAL

    finished = hb2r("jobs", "--state", "queued", str(config))

    assert finished.returncode == 0, finished.stderr
    rows = [line.split() for line in finished.stdout.splitlines()]
    assert [str(latest.id), "queued", "0", "tv", "Show/S01E04.mkv"] in rows
    enqueue(database, "Show/S01E05.mkv")  # and the agent can still write


def test_an_unknown_state_is_refused_with_the_list_of_states(config: Path) -> None:
    finished = hb2r("jobs", "--state", "paused", str(config))

    assert finished.returncode == 2
    assert "unknown state 'paused' (choose from queued, running, done, failed, dead, cancelled)" in finished.stderr
    assert not (config.parent / "state").exists()


def test_the_help_of_jobs_names_every_state() -> None:
    finished = hb2r("jobs", "--help")

    text = " ".join(finished.stdout.split())
    assert all(str(state) in text for state in JobState)


@pytest.mark.parametrize(
    "order",
    [
        pytest.param(["--dead", "CONFIG"], id="dead-then-config"),
        pytest.param(["CONFIG", "--dead"], id="config-then-dead"),
    ],
)
def test_retry_dead_requeues_every_dead_job(config: Path, database: sqlite3.Connection, order: list[str]) -> None:
    made = fill(database)
    superseded = enqueue(database, "Old.mkv", fingerprint="1:old")
    for _ in range(RETRY.attempts):
        superseded = fail(database, superseded, "broken")
    newer = enqueue(database, "Old.mkv", fingerprint="2:new")

    finished = hb2r("retry", *(str(config) if part == "CONFIG" else part for part in order))

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines() == [
        f"Requeued job {made['dead'].id} (movies: Film (2020).mkv), was dead: output is 0.5 s long, the source 1.0 s",
        "Left 1 dead job as they are: another job for the same file supersedes them.",
    ]
    requeued = jobs.get(database, made["dead"].id)
    assert requeued is not None
    assert (requeued.state, requeued.attempts) == (JobState.QUEUED, 0)
    assert requeued.error == made["dead"].error  # kept until it runs
    assert jobs.get(database, superseded.id) == superseded
    assert jobs.get(database, newer.id) == newer


def test_retry_of_one_failed_job_runs_it_without_waiting(config: Path, database: sqlite3.Connection) -> None:
    failed = fill(database)["failed"]

    finished = hb2r("retry", str(failed.id), str(config))

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == (
        f"Requeued job {failed.id} (tv: Show/S01E03.mkv), was failed: HandBrakeCLI exited with 3\n"
    )
    assert jobs.next_runnable(database, now=T0, library_order=["tv"]) == jobs.get(database, 1)  # older first
    requeued = jobs.get(database, failed.id)
    assert requeued is not None
    assert (requeued.state, requeued.attempts, requeued.not_before) == (JobState.QUEUED, 0, None)


@pytest.mark.parametrize(
    "job, message",
    [
        pytest.param("999", "error: there is no job 999; nothing was requeued", id="an-unknown-job"),
        pytest.param(
            "1",
            "error: job 1 is queued; only a dead, failed or cancelled job can be retried; nothing was requeued",
            id="a-queued-job",
        ),
        pytest.param(
            "2",
            "error: job 2 is running; only a dead, failed or cancelled job can be retried; nothing was requeued",
            id="a-running-job",
        ),
    ],
)
def test_retry_of_a_job_that_cannot_be_retried_fails_and_changes_nothing(
    config: Path, database: sqlite3.Connection, job: str, message: str
) -> None:
    fill(database)
    before = jobs.list_jobs(database)

    finished = hb2r("retry", job, str(config))

    assert finished.returncode == 1
    assert message in finished.stderr.splitlines()
    assert finished.stdout == ""
    assert jobs.list_jobs(database) == before


def test_front_moves_a_waiting_job_before_every_other(config: Path, database: sqlite3.Connection) -> None:
    made = fill(database)
    last = enqueue(database, "Late (2024).mkv", library="movies")

    finished = hb2r("jobs", "--front", str(last.id), str(config))

    assert finished.returncode == 0, finished.stderr
    assert finished.stdout == f"Moved job {last.id} (movies: Late (2024).mkv) to the front: it starts next\n"
    assert jobs.next_runnable(database, now=T0, library_order=["tv", "movies"]) == jobs.get(database, last.id)
    assert jobs.get(database, made["queued"].id) == made["queued"]  # the others are as they were


@pytest.mark.parametrize(
    "job, message",
    [
        pytest.param("999", "error: there is no job 999; nothing was changed", id="an-unknown-job"),
        pytest.param(
            "2",
            "error: job 2 is running: only a queued or failed job can be moved to the front; nothing was changed",
            id="a-running-job",
        ),
    ],
)
def test_front_of_a_job_that_is_not_waiting_fails_and_changes_nothing(
    config: Path, database: sqlite3.Connection, job: str, message: str
) -> None:
    fill(database)
    before = jobs.list_jobs(database)

    finished = hb2r("jobs", "--front", job, str(config))

    assert finished.returncode == 1
    assert message in finished.stderr.splitlines()
    assert jobs.list_jobs(database) == before


def test_retry_without_a_database_makes_none(config: Path) -> None:
    one = hb2r("retry", "3", str(config))
    dead = hb2r("retry", "--dead", str(config))

    assert one.returncode == 1
    assert "error: there is no job 3 (no state database at " in one.stderr
    assert dead.returncode == 0, dead.stderr
    assert dead.stdout == "No dead jobs to retry.\n"
    assert not (config.parent / "state").exists()


@pytest.mark.parametrize(
    "arguments, message",
    [
        pytest.param(["retry"], "give the JOB_ID of a job to retry", id="neither-a-job-nor-dead"),
        pytest.param(["retry", "--dead", "5", "CONFIG"], "give either JOB_ID or --dead, not both", id="both"),
        pytest.param(["retry", "first", "CONFIG"], "JOB_ID must be a job's number", id="a-job-id-that-is-no-number"),
    ],
)
def test_retry_needs_exactly_one_of_a_job_id_and_dead(config: Path, arguments: list[str], message: str) -> None:
    finished = hb2r(*(str(config) if part == "CONFIG" else part for part in arguments))

    assert finished.returncode == 2
    assert "usage: hb2r retry [-h] (JOB_ID | --dead) [CONFIG]" in finished.stderr
    assert message in finished.stderr
    assert not (config.parent / "state").exists()


def test_jobs_quotes_a_hostile_file_name_and_escapes_its_error_on_one_line(
    config: Path, database: sqlite3.Connection
) -> None:
    name = "a\nb\x1b[2J\u202e.mkv"
    fail(database, enqueue(database, name), "cannot open \x1b[2J\u202ex\x07\nsecond line", now=FAR_FUTURE)

    finished = hb2r("jobs", str(config))
    retried = hb2r("retry", "1", str(config))

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert len(lines) == 3
    assert '"a\\nb\\x1b[2J\\u202e.mkv"' in lines[1]
    assert lines[1].endswith("cannot open \\x1b[2J\\u202ex\\x07")  # the first line of the error, escaped
    assert "\x1b" not in finished.stdout and "\u202e" not in finished.stdout
    assert retried.stdout == (
        'Requeued job 1 (tv: "a\\nb\\x1b[2J\\u202e.mkv"), was failed: cannot open \\x1b[2J\\u202ex\\x07\n'
    )


# --- pages: a queue of a million jobs is shown a page at a time, newest page first


def seven(connection: sqlite3.Connection) -> list[Job]:
    made = [enqueue(connection, f"Show/S01E{index:02d}.mkv") for index in range(1, 8)]
    fail(connection, fail(connection, made[0], "exit 3", now=T0 - timedelta(hours=2)), "exit 3")  # dead: counted
    return made


def test_jobs_shows_the_newest_page_and_how_to_reach_the_older_ones(config: Path, database: sqlite3.Connection) -> None:
    seven(database)

    first = hb2r("jobs", "--limit", "3", str(config))
    second = hb2r("jobs", "--limit", "3", "--before", "5", str(config))
    last = hb2r("jobs", "--limit", "3", "--before", "2", str(config))

    assert first.returncode == second.returncode == last.returncode == 0, first.stderr + second.stderr + last.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()[1:4]] == ["5", "6", "7"]
    assert first.stdout.splitlines()[4:] == [
        "7 jobs: 6 queued, 1 dead",
        "Shown: the newest 3. Older ones: hb2r jobs --limit 3 --before 5",
    ]
    assert [line.split()[0] for line in second.stdout.splitlines()[1:4]] == ["2", "3", "4"]
    assert second.stdout.splitlines()[-1] == "Shown: 3 older than job 5. Older ones: hb2r jobs --limit 3 --before 2"
    assert [line.split()[0] for line in last.stdout.splitlines()[1:2]] == ["1"]
    assert last.stdout.splitlines()[-2:] == ["7 jobs: 6 queued, 1 dead", "Shown: 1 older than job 2."]


def test_the_next_page_keeps_the_filters(config: Path, database: sqlite3.Connection) -> None:
    seven(database)
    enqueue(database, "Film.mkv", library="movies")

    finished = hb2r("jobs", "--state", "queued", "--library", "tv", "--limit", "2", str(config))

    assert finished.returncode == 0, finished.stderr
    assert [line.split()[0] for line in finished.stdout.splitlines()[1:3]] == ["6", "7"]
    assert finished.stdout.splitlines()[-2:] == [
        "6 jobs: 6 queued",
        "Shown: the newest 2. Older ones: hb2r jobs --state queued --library tv --limit 2 --before 6",
    ]


def test_jobs_shows_a_hundred_by_default(config: Path, database: sqlite3.Connection) -> None:
    for index in range(105):
        enqueue(database, f"e{index:03d}.mkv")

    finished = hb2r("jobs", str(config))

    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert [int(line.split()[0]) for line in lines[1:-2]] == list(range(6, 106))
    assert lines[-2:] == ["105 jobs: 105 queued", "Shown: the newest 100. Older ones: hb2r jobs --before 6"]


def test_jobs_json_pages_with_next_before(config: Path, database: sqlite3.Connection) -> None:
    seven(database)

    first = json.loads(hb2r("jobs", "--json", "--limit", "4", str(config)).stdout)
    second = json.loads(
        hb2r("jobs", "--json", "--limit", "4", "--before", str(first["next_before"]), str(config)).stdout
    )

    assert [job["id"] for job in first["jobs"]] == [4, 5, 6, 7]
    assert first["next_before"] == 4
    assert [job["id"] for job in second["jobs"]] == [1, 2, 3]
    assert second["next_before"] is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param(
            ["--limit", "0"], "argument --limit: must be a whole number from 1 to 10000, got '0'", id="limit-zero"
        ),
        pytest.param(
            ["--limit", "100000"], "argument --limit: must be a whole number from 1 to 10000", id="limit-too-big"
        ),
        pytest.param(
            ["--limit", "ten"], "argument --limit: must be a whole number from 1 to 10000, got 'ten'", id="limit-word"
        ),
        pytest.param(
            ["--before", "x"], "argument --before: must be a job's number (see hb2r jobs), got 'x'", id="before-word"
        ),
        pytest.param(
            ["--before", "0"], "argument --before: must be a job's number (see hb2r jobs), got '0'", id="before-zero"
        ),
    ],
)
def test_a_bad_page_option_is_refused_naming_it(config: Path, arguments: list[str], message: str) -> None:
    finished = hb2r("jobs", *arguments, str(config))

    assert finished.returncode == 2
    assert message in finished.stderr
