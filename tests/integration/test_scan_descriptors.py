"""A pass that runs out of file descriptors fails and is retried; it never pauses a library as
unreadable nor takes its files for vanished, and it does not make the archive look empty.

The pass runs in a child process whose RLIMIT_NOFILE is lowered and then used up by opening
/dev/null until the kernel answers EMFILE — a real shortage, as idle sockets or a leak would
cause. The child reports what the pass did as JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agent.descriptors import OncePerInterval
from tests.support.configs import write_small_library

from .conftest import MakeApi

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import asyncio, errno, io, json, os, pathlib, resource, sys
from agent import logs
from agent.config import load_config
from agent.descriptors import OutOfDescriptors
from agent.engine import AgentState, reconcile
from agent.scan import scan_archive
from agent.store import jobs
from agent.store.db import open_database
from agent.store.sqlite import SqliteStore

config = load_config(pathlib.Path(sys.argv[1])).config
logs.configure(stream=io.StringIO(), json=True)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))


def use_up_descriptors():
    held = []
    while True:
        try:
            held.append(os.open(os.devnull, os.O_RDONLY))
        except OSError as error:
            assert error.errno == errno.EMFILE, error
            return held


async def main():
    connection = open_database(config.paths.state_dir)
    state = AgentState(config=config, store=SqliteStore(connection), preset_hashes={"tv": "p1"})
    await reconcile(state, log=logs.get_logger("test"))  # a good pass: the baseline
    report = {"first_queued": len(jobs.list_jobs(connection, state=jobs.JobState.QUEUED))}
    with open(os.path.join(config.libraries[0].source, "E99.mkv"), "wb") as new_file:  # to be seen later
        new_file.write(b"new episode" * 100)
    held = use_up_descriptors()
    try:
        await reconcile(state, log=logs.get_logger("test"))
        report["starved"] = "completed"
    except OutOfDescriptors as error:
        report["starved"] = "OutOfDescriptors"
        report["message"] = str(error)
    report["paused"] = dict(state.paused_libraries)
    held += use_up_descriptors()  # any the failed pass gave back
    try:  # the archive alone: a folder it cannot list must not look empty (outputs "missing")
        scan_archive(config)
        report["archive"] = "completed"
    except OutOfDescriptors:
        report["archive"] = "OutOfDescriptors"
    for descriptor in held:
        os.close(descriptor)
    await reconcile(state, log=logs.get_logger("test"))
    report["paused_after"] = dict(state.paused_libraries)
    report["queued_after"] = sorted(job.rel_path for job in jobs.list_jobs(connection, state=jobs.JobState.QUEUED))
    report["cancelled_after"] = len(jobs.list_jobs(connection, state=jobs.JobState.CANCELLED))
    print(json.dumps(report))


asyncio.run(main())
"""


def test_a_pass_out_of_file_descriptors_fails_without_pausing_the_library(tmp_path: Path) -> None:
    config = write_small_library(tmp_path, files=3, output_folder=True)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(config)], cwd=REPO, capture_output=True, text=True, check=False, timeout=60
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.splitlines()[-1])

    assert report["first_queued"] == 3
    assert report["starved"] == "OutOfDescriptors", report
    assert "Too many open files" in report["message"]
    assert report["paused"] == {}, "a shortage of descriptors paused the library as unreadable"
    assert report["archive"] == "OutOfDescriptors"
    # Once descriptors are back, the next pass sees everything, the new file included.
    assert report["paused_after"] == {}
    assert report["queued_after"] == ["E00.mkv", "E01.mkv", "E02.mkv", "E99.mkv"]
    assert report["cancelled_after"] == 0


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


def test_a_shortage_is_logged_once_a_minute_with_how_often_it_happened() -> None:
    now = [1000.0]
    log = RecordingLog()
    reporter = OncePerInterval(log, interval=60.0, clock=lambda: now[0])
    for _ in range(500):  # a burst: one failed accept after another
        reporter.report("out of file descriptors", reason="Too many open files")
    now[0] += 59.0
    reporter.report("out of file descriptors", reason="Too many open files")
    assert [event for event, _ in log.lines] == ["out of file descriptors"]
    now[0] += 1.0
    reporter.report("out of file descriptors", reason="Too many open files")
    reporter.report("dispatcher tick failed: out of file descriptors", reason="Too many open files")
    assert log.lines == [
        ("out of file descriptors", {"occurrences": 1, "reason": "Too many open files"}),
        ("out of file descriptors", {"occurrences": 501, "reason": "Too many open files"}),
        ("dispatcher tick failed: out of file descriptors", {"occurrences": 1, "reason": "Too many open files"}),
    ]


async def test_health_says_degraded_while_passes_fail_for_want_of_descriptors(make_api: MakeApi) -> None:
    api = await make_api()
    # What `hb2r run` records when a pass raises OutOfDescriptors (agent/runtime.py), until one succeeds.
    api.context.state.pass_problem = "reconcile pass failed, retried next pass: cannot open /tv: Too many open files"
    response = await api.client.get("/health")
    body = await response.json()
    assert (response.status, body["status"]) == (200, "degraded")
    assert body["problems"] == [api.context.state.pass_problem]

    api.context.state.pass_problem = None
    assert (await (await api.client.get("/health")).json())["status"] == "healthy"
