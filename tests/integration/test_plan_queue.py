"""`hb2r plan` tells the queue's story: a file whose job is queued, running, failed (waiting
for its retry), dead or cancelled is shown as that, not as "+ transcode (new)", and only the
work the agent will really do is pending (exit 2).

The queue is real SQLite filled by the real store functions, with the identities the engine
gives jobs (the file's real fingerprint, the preset's identity from the real HandBrakeCLI);
one test makes its dead job the real way, by a real pass and a real HandBrakeCLI failing on
a clip it cannot read. `hb2r plan` and `hb2r jobs` run as processes; /api/status is served by
the real aiohttp app over the same database.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent import logs
from agent.api.app import init_app
from agent.config import load_config
from agent.config.models import Config, Retry
from agent.dispatcher import Dispatcher
from agent.engine import AgentState, reconcile
from agent.gate import Sample
from agent.handbrake.probe import handbrake_version
from agent.identity import output_path, preset_identity
from agent.observe import preset_hashes
from agent.scan import fingerprint
from agent.store import jobs
from agent.store.db import open_database
from agent.store.jobs import Job, JobState
from agent.store.sqlite import SqliteStore
from tests.support.agent_process import agent_environment
from tests.support.api import VIEWER_PASSWORD, build_context
from tests.support.api import write_config as write_api_config
from tests.support.cli import hb2r as run_hb2r
from tests.support.clips import make_clip
from tests.support.plan_cli import place, snapshot, write_config

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
FAR_FUTURE = datetime(2999, 1, 1, tzinfo=UTC)
RETRY = Retry()  # the config's default: 3 attempts
GIB = 1024**3


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-second video, made once for the module and copied where needed."""
    path = tmp_path_factory.mktemp("clips") / "clip.mkv"
    make_clip(path, seconds=1, audio=False)
    return path


def hb2r(*arguments: str, config: Path) -> subprocess.CompletedProcess[str]:
    """Run `hb2r ARGUMENTS CONFIG` with HOME in the test's folder, so anything written there is seen."""
    return run_hb2r(*arguments, str(config), environment={**agent_environment(), "HOME": str(config.parent / "home")})


def enqueue_as_the_engine_does(connection: Any, config: Config, library_name: str, rel_path: str) -> Job:
    """Queue a job with the identity a pass would give it: real fingerprint, real preset identity."""
    library = next(library for library in config.libraries if library.name == library_name)
    preset = config.preset_for(library)
    path = library.source / rel_path
    job = jobs.enqueue(
        connection,
        library=library.name,
        rel_path=rel_path,
        fingerprint=fingerprint(path, size=path.stat().st_size),
        preset_hash=preset_identity(
            preset, import_file_content=None, handbrake_version=handbrake_version(config.handbrake.binary)
        ),
        output_path=output_path(library, preset, rel_path),
        reason="new",
        now=T0,
    )
    assert job is not None
    return job


def fail(connection: Any, job: Job, error: str, *, times: int = 1, now: datetime = T0) -> Job:
    for _ in range(times):
        jobs.mark_running(connection, job.id, now=now)
        job = jobs.mark_failed(connection, job.id, error=error, stderr_tail=["[error]"], retry=RETRY, now=now)
    return job


def fill_queue(config_path: Path, *, states: list[str]) -> dict[str, Job]:
    """Give the file `<state>.mkv` of library tv a job in that state; return them by state."""
    config = load_config(config_path).config
    connection = open_database(config.paths.state_dir)
    made: dict[str, Job] = {}
    try:
        for state in states:
            job = enqueue_as_the_engine_does(connection, config, "tv", f"{state}.mkv")
            if state == "running":
                jobs.mark_running(connection, job.id, now=T0)
                jobs.record_progress(connection, job.id, progress=42.5, now=T0)
            elif state == "failed":
                job = fail(connection, job, "HandBrakeCLI exited with 3\nmore", now=FAR_FUTURE)
            elif state == "dead":
                job = fail(connection, job, "Invalid data found when processing input\x1b[2J", times=RETRY.attempts)
            elif state == "cancelled":
                job = jobs.cancel(connection, job.id, now=T0, by=jobs.CancelledBy.OPERATOR)
            made[state] = jobs.get(connection, job.id) or job
    finally:
        connection.close()
    return made


def test_plan_shows_each_file_by_what_its_job_is_doing(tmp_path: Path, clip: Path) -> None:
    states = ["queued", "running", "failed", "dead", "cancelled"]
    place(clip, tmp_path / "tv", *(f"{state}.mkv" for state in states), "new.mkv")
    config = write_config(tmp_path, libraries=["tv"])
    made = fill_queue(config, states=states)
    ids = {state: job.id for state, job in made.items()}

    finished = hb2r("plan", config=config)

    assert finished.returncode == 2, finished.stdout + finished.stderr  # new, queued, running, failed: work
    assert finished.stdout.splitlines() == [
        f"tv ({tmp_path / 'tv'} -> {tmp_path / 'archive'}/TV, 6 files)",
        "  watch: inotify events (new files are seen as they arrive)",
        f"  x cancelled cancelled.mkv -> TV/cancelled.mkv (new; job {ids['cancelled']} was cancelled;"
        f" to encode it: hb2r retry {ids['cancelled']})",
        f"  x dead      dead.mkv -> TV/dead.mkv (new; job {ids['dead']} dead after 3 failed attempts:"
        f" Invalid data found when processing input\\x1b[2J; to try again: hb2r retry {ids['dead']})",
        f"  ? failed    failed.mkv -> TV/failed.mkv (new; job {ids['failed']} failed (attempt 1 of 3):"
        " HandBrakeCLI exited with 3; next try after 2999-01-01 00:00:30 UTC)",
        "  + transcode new.mkv -> TV/new.mkv (new)",
        f"  + queued    queued.mkv -> TV/queued.mkv (new; job {ids['queued']})",
        f"  * running   running.mkv -> TV/running.mkv (new; job {ids['running']}, 42.5%)",
        "Plan: 1 to transcode, 1 queued, 1 running, 1 to retry, 1 dead, 1 cancelled.",
    ]

    as_json = json.loads(hb2r("plan", "--json", config=config).stdout)
    assert as_json["pending"] is True
    assert {key: count for key, count in as_json["summary"].items() if count} == {
        "transcode": 1, "queued": 1, "running": 1, "failed": 1, "dead": 1, "cancelled": 1,
    }  # fmt: skip
    by_path = {action["path"]: action for action in as_json["actions"]}
    assert by_path["new.mkv"]["job"] is None
    assert by_path["dead.mkv"]["job"] == {
        "id": ids["dead"],
        "state": "dead",
        "attempts": 3,
        "error": "Invalid data found when processing input\x1b[2J",
        "not_before": None,
        "progress": None,
        "retry": f"hb2r retry {ids['dead']}",
    }
    assert by_path["failed.mkv"]["job"]["not_before"] == "2999-01-01T00:00:30.000000+00:00"
    assert by_path["running.mkv"]["job"]["progress"] == 42.5
    assert by_path["cancelled.mkv"]["job"]["retry"] == f"hb2r retry {ids['cancelled']}"
    assert "retry" not in by_path["queued.mkv"]["job"]


def test_dead_and_cancelled_files_alone_are_not_pending(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "dead.mkv", "cancelled.mkv")
    config = write_config(tmp_path, libraries=["tv"])
    made = fill_queue(config, states=["dead", "cancelled"])

    finished = hb2r("plan", config=config)
    as_json = json.loads(hb2r("plan", "--json", config=config).stdout)

    assert finished.returncode == 0, finished.stdout + finished.stderr  # nothing the agent will do by itself
    assert finished.stdout.splitlines()[-1] == "Plan: 1 dead, 1 cancelled."
    assert f"to try again: hb2r retry {made['dead'].id})" in finished.stdout
    assert "+ transcode" not in finished.stdout
    assert as_json["pending"] is False


def test_reading_the_queue_writes_nothing(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "dead.mkv", "queued.mkv")
    config = write_config(tmp_path, libraries=["tv"])
    fill_queue(config, states=["dead", "queued"])  # no ledger: plan asks HandBrakeCLI the preset identity
    before = snapshot(tmp_path)

    finished = hb2r("plan", config=config)

    assert finished.returncode == 2, finished.stderr
    assert "  x dead      dead.mkv" in finished.stdout
    assert snapshot(tmp_path) == before


def test_a_dead_job_of_older_content_does_not_hide_the_new_content(tmp_path: Path, clip: Path) -> None:
    place(clip, tmp_path / "tv", "dead.mkv")
    config = write_config(tmp_path, libraries=["tv"])
    fill_queue(config, states=["dead"])
    with open(tmp_path / "tv" / "dead.mkv", "ab") as source:  # the operator replaced the broken file
        source.write(b"\0" * 4096)
    os.utime(tmp_path / "tv" / "dead.mkv", ns=(1, 1))

    finished = hb2r("plan", config=config)

    assert finished.returncode == 2
    assert "  + transcode dead.mkv -> TV/dead.mkv (new)" in finished.stdout.splitlines()


class FixedSample:
    """The gate's view of the host, fixed: on a shared test machine, other people's load must
    not hold the job back (the gate's own tests use the real sampler's decisions)."""

    def sample(self) -> Sample:
        return Sample(cpu_percent=5.0, memory_percent=20.0, available_memory=8 * GIB, archive_free=500 * GIB)


def test_a_file_handbrake_cannot_read_is_shown_dead_with_its_retry_command(tmp_path: Path, clip: Path) -> None:
    (tmp_path / "tv").mkdir()
    (tmp_path / "tv" / "broken.mkv").write_bytes(b"not a video at all\n" * 4096)
    config_path = write_config(tmp_path, libraries=["tv"])
    settings = json.loads(config_path.read_text())
    settings.update(retry={"attempts": 1}, limits={"min_free_disk": "1MiB", "max_jobs": 1})
    config_path.write_text(json.dumps(settings))
    config = load_config(config_path).config
    logs.configure(stream=io.StringIO(), json=True)
    log = logs.get_logger("test")

    async def run_until_dead() -> Job:
        connection = open_database(config.paths.state_dir)
        try:
            state = AgentState(
                config=config, store=SqliteStore(connection), preset_hashes=preset_hashes(config, warn=print)
            )
            await reconcile(state, log=log)
            dispatcher = Dispatcher(state, log=log, sampler=FixedSample())
            dispatcher.tick()
            assert dispatcher.running, "the gate admitted the job"
            deadline = time.monotonic() + 60
            while dispatcher.running and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            (job,) = jobs.list_jobs(connection)
            await reconcile(state, log=log)  # the next pass leaves it dead and says nothing is pending
            assert state.last_pass is not None and state.last_pass.pending is False
            return jobs.get(connection, job.id) or job
        finally:
            connection.close()

    dead = asyncio.run(run_until_dead())
    assert dead.state == JobState.DEAD, dead

    finished = hb2r("plan", config=config_path)

    assert finished.returncode == 0, finished.stdout + finished.stderr
    lines = finished.stdout.splitlines()
    dead_line = "  x dead      broken.mkv -> TV/broken.mkv (new; broken.mkv: ffprobe cannot read it (exit code 1): "
    assert lines[1] == "  watch: inotify events (new files are seen as they arrive)"
    assert lines[2].startswith(dead_line), lines  # why its media facts are missing, then what became of its job
    assert f": encoded with the library's preset; job {dead.id} dead after 1 failed attempt: " in lines[2]
    assert lines[2].endswith(f"; to try again: hb2r retry {dead.id})")
    assert lines[-1] == "Plan: 1 dead."

    retried = hb2r("retry", str(dead.id), config=config_path)
    assert retried.returncode == 0, retried.stderr
    again = hb2r("plan", config=config_path)
    assert again.returncode == 2
    queued_line = next(line for line in again.stdout.splitlines() if line.startswith("  + queued    broken.mkv"))
    assert queued_line.startswith("  + queued    broken.mkv -> TV/broken.mkv (new; broken.mkv: ffprobe cannot read")
    assert queued_line.endswith(f": encoded with the library's preset; est. saving 0 B; job {dead.id})")


@pytest.mark.parametrize(
    "states",
    [
        pytest.param(["queued", "queued", "running", "failed", "dead", "new"], id="work-pending"),
        pytest.param(["dead", "dead"], id="only-dead-jobs-nothing-pending"),
    ],
)
async def test_plan_jobs_and_api_status_agree_on_the_same_database(
    tmp_path: Path, clip: Path, aiohttp_client: Any, states: list[str]
) -> None:
    names = [f"{state}-{index}.mkv" for index, state in enumerate(states)]
    config_path = write_api_config(tmp_path, extra="retry: {attempts: 2}\n")
    # Stable at once: the clips were just copied, and their ctime cannot be set back.
    config_path.write_text(config_path.read_text().replace("preset: fast}", "preset: fast, stable_after: 0s}"))
    context = build_context(config_path)
    client = await aiohttp_client(init_app(context))
    state = context.state
    connection = state.store.database
    state.preset_hashes = preset_hashes(state.config, warn=print)
    log = logs.get_logger("test")
    try:
        place(clip, tmp_path / "tv", *(name for name, wanted in zip(names, states, strict=True) if wanted != "new"))
        await reconcile(state, log=log)  # a real pass queues every file
        retry = state.config.retry
        for job in jobs.list_jobs(connection):
            wanted = states[names.index(job.rel_path)]
            if wanted == "running":
                jobs.mark_running(connection, job.id, now=T0)
            elif wanted in ("failed", "dead"):
                for _ in range(1 if wanted == "failed" else retry.attempts):
                    jobs.mark_running(connection, job.id, now=FAR_FUTURE)
                    jobs.mark_failed(connection, job.id, error="exit 3", stderr_tail=[], retry=retry, now=FAR_FUTURE)
        place(clip, tmp_path / "tv", *(name for name, wanted in zip(names, states, strict=True) if wanted == "new"))

        plan_text = hb2r("plan", config=config_path)
        plan_json = json.loads(hb2r("plan", "--json", config=config_path).stdout)
        listed = json.loads(hb2r("jobs", "--json", config=config_path).stdout)["jobs"]
        login = await client.post("/api/auth/login", json={"username": "viewer", "password": VIEWER_PASSWORD})
        headers = {"Authorization": f"Bearer {(await login.json())['token']}"}
        before_pass = await (await client.get("/api/status", headers=headers)).json()
        await reconcile(state, log=log)  # the agent's own plan, from its next pass
        after_pass = await (await client.get("/api/status", headers=headers)).json()
    finally:
        context.checker.close()
        connection.close()

    by_state = Counter(job["state"] for job in listed)
    tv_counts = next(library for library in before_pass["libraries"] if library["name"] == "tv")["counts"]
    for job_state in ("queued", "running", "failed", "dead"):
        assert plan_json["summary"][job_state] == by_state[job_state] == tv_counts[job_state], job_state
    to_queue = states.count("new")
    assert plan_json["summary"]["transcode"] == to_queue
    expected_pending = any(wanted in ("queued", "running", "failed", "new") for wanted in states)
    assert plan_json["pending"] is expected_pending
    assert plan_text.returncode == (2 if expected_pending else 0)
    # The agent's pass queued the new file: its last plan holds it as queued, and agrees on the rest.
    assert after_pass["plan"]["pending"] is expected_pending
    counts = after_pass["plan"]["counts"]
    assert counts.get("transcode", 0) == 0
    assert counts.get("queued", 0) == plan_json["summary"]["queued"] + to_queue
    for job_state in ("running", "failed", "dead"):
        assert counts.get(job_state, 0) == plan_json["summary"][job_state], job_state
