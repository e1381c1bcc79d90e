"""The dispatcher's lease and per-host decisions as tables: no HandBrakeCLI, no store.

When a running job's lease is renewed, what a heartbeat's answer means, and which ends of an
encode are this host's problem (given back, no attempt spent) rather than the file's.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.config.models import Limits
from agent.dispatch_decisions import (
    Candidate,
    Discard,
    Ended,
    Fail,
    Lost,
    Release,
    Start,
    Tick,
    after_heartbeat,
    conclude,
    decide,
    heartbeat_due,
    library_seen_here,
    unavailable_libraries,
)
from agent.gate import Sample
from agent.verify import FailureKind, Verification

GIB = 1024**3
WHOLE = Verification(True, "ok")


@pytest.mark.parametrize(
    "since_last, lease, due",
    [
        pytest.param(0.0, 30.0, False, id="just-renewed-waits"),
        pytest.param(9.9, 30.0, False, id="before-a-third-of-the-lease-waits"),
        pytest.param(10.0, 30.0, True, id="a-third-of-the-lease-renews"),
        pytest.param(25.0, 30.0, True, id="late-renews-at-once"),
        pytest.param(1.0, 3.0, True, id="a-short-lease-renews-every-second"),
    ],
)
def test_heartbeat_due(since_last: float, lease: float, due: bool) -> None:
    assert heartbeat_due(now=100.0 + since_last, last_heartbeat=100.0, lease=lease) is due


@pytest.mark.parametrize(
    "held, cancelled, expected",
    [
        pytest.param(True, False, None, id="still-held-carries-on"),
        pytest.param(
            False,
            True,
            Lost(7, "the job was cancelled elsewhere", cancelled=True),
            id="cancelled-elsewhere-stops-like-an-operator-cancel",
        ),
        pytest.param(
            False,
            False,
            Lost(7, "its lease is no longer this host's (expired and taken, released or gone)"),
            id="no-row-renewed-means-lost-kill-it",
        ),
    ],
)
def test_after_heartbeat(held: bool, cancelled: bool, expected: Lost | None) -> None:
    assert after_heartbeat(job_id=7, held=held, cancelled=cancelled) == expected


@pytest.mark.parametrize(
    "ended, expected",
    [
        pytest.param(
            Ended(1, stopped=False, verification=WHOLE, lost=True), Discard(1), id="a-lost-job-never-publishes"
        ),
        pytest.param(
            Ended(1, stopped=False, lost=True, verification=Verification(False, "short", FailureKind.COUNTED)),
            Discard(1),
            id="a-lost-jobs-failure-is-not-recorded",
        ),
        pytest.param(
            Ended(1, stopped=False, start_error="[Errno 13] Permission denied: '/opt/HandBrakeCLI'"),
            Release(
                1,
                "HandBrakeCLI cannot start on this host: [Errno 13] Permission denied: '/opt/HandBrakeCLI'",
                encoder=True,
            ),
            id="handbrake-that-cannot-be-executed-releases",
        ),
        pytest.param(
            Ended(
                1, stopped=False, exit_code=127, progressed=False, stderr_tail=("nice: 'HandBrakeCLI': No such file",)
            ),
            Release(
                1, "HandBrakeCLI cannot start on this host: exit 127 (nice: 'HandBrakeCLI': No such file)", encoder=True
            ),
            id="an-exec-wrapper-that-cannot-find-handbrake-releases",
        ),
        pytest.param(
            Ended(
                1,
                stopped=False,
                exit_code=127,
                progressed=True,
                verification=Verification(False, "exit 127", FailureKind.COUNTED),
            ),
            Fail(1, FailureKind.COUNTED, "exit 127"),
            id="an-encode-that-made-progress-fails-as-its-verification-says",
        ),
    ],
)
def test_conclude_lease_and_host_problems(ended: Ended, expected: object) -> None:
    assert conclude(ended) == expected


def test_a_library_unreadable_here_is_not_claimed_from() -> None:
    unavailable = unavailable_libraries(
        configured={"tv", "movies"}, paused=(), broken=(), held=(), unpublishable=(), unreadable_here=("tv",)
    )
    assert unavailable == frozenset({"tv"})


CALM = Sample(cpu_percent=10.0, memory_percent=30.0, available_memory=8 * GIB, archive_free=500 * GIB)


def _tick(**changes: object) -> Tick:
    base = Tick(
        now=1000.0,
        minute_of_day=720,
        sample=CALM,
        limits=Limits(min_free_memory=GIB, min_free_disk=GIB, max_jobs=2),
        cpu_count=8,
        stall_timeout=300.0,
        configured=frozenset({"tv"}),
        available=frozenset({"tv"}),
        candidates=(Candidate(job_id=1, library="tv", source_size=GIB),),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_host_whose_handbrake_cannot_start_claims_nothing_and_says_why() -> None:
    assert isinstance(decide(_tick()).commands[-1], Start)
    decision = decide(_tick(encoder_problem="/opt/HandBrakeCLI is not executable"))
    assert decision.commands == ()
    assert decision.blocked == ("HandBrakeCLI cannot start on this host: /opt/HandBrakeCLI is not executable",)


@pytest.mark.parametrize(
    ("listable", "empty", "last_file_count", "seen"),
    [
        pytest.param(False, False, 10, False, id="a-folder-that-cannot-be-listed-is-not-seen"),
        pytest.param(True, False, 10, True, id="a-folder-with-entries-is-seen"),
        pytest.param(True, True, 10, False, id="an-empty-mount-point-where-files-were-is-a-missing-mount"),
        pytest.param(True, True, 0, True, id="an-empty-library-that-was-empty-is-seen"),
        pytest.param(True, True, None, None, id="empty-and-the-store-cannot-say-is-not-known"),
    ],
)
def test_library_seen_here(listable: bool, empty: bool, last_file_count: int | None, seen: bool | None) -> None:
    assert library_seen_here(listable=listable, empty=empty, last_file_count=last_file_count) is seen
