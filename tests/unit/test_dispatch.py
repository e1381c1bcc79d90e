"""The dispatcher's decisions as tables: the facts of a tick (or an ended encode) -> commands.

No HandBrakeCLI, no processes, no SQLite: `agent.dispatch_decisions` is pure.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from agent.config.models import Limits
from agent.dispatch_decisions import (
    Cancel,
    Candidate,
    Discard,
    Encoding,
    Ended,
    Fail,
    Publish,
    Release,
    Resume,
    Start,
    Suspend,
    Tick,
    Unrecorded,
    before_start,
    conclude,
    decide,
    unavailable_libraries,
)
from agent.gate import Sample, estimate_output_size
from agent.verify import FailureKind, Verification

GIB = 1024**3
CALM = Sample(cpu_percent=10.0, memory_percent=30.0, available_memory=8 * GIB, archive_free=500 * GIB)
BUSY_CPU = replace(CALM, cpu_percent=95.0)
MEMORY_PRESSED = replace(CALM, memory_percent=97.0)
LIMITS = Limits(min_free_memory=GIB, min_free_disk=GIB, max_jobs=2)
EPISODE = Candidate(job_id=1, library="tv", source_size=GIB)
FILM = Candidate(job_id=2, library="movies", source_size=GIB)
NOW = 1000.0


def encoding(job_id: int, *, started: float, **changes: Any) -> Encoding:
    """A running encode in tv that made progress a moment ago."""
    return replace(
        Encoding(job_id=job_id, library="tv", started=started, last_progress=NOW - 1, progress=40.0), **changes
    )


def tick(**changes: Any) -> Tick:
    """A tick of a calm host at noon, both libraries configured and available, nothing running or waiting."""
    base = Tick(
        now=NOW,
        minute_of_day=12 * 60,
        sample=CALM,
        limits=LIMITS,
        cpu_count=8,
        stall_timeout=300.0,
        configured=frozenset({"tv", "movies"}),
        available=frozenset({"tv", "movies"}),
    )
    return replace(base, **changes)


def start(candidate: Candidate) -> Start:
    return Start(candidate.job_id, estimate_output_size(candidate.source_size))


STALL = "no progress for 5m at 40.0%: HandBrakeCLI hung"
GONE = "its library was taken out of the config"


@pytest.mark.parametrize(
    "facts, expected",
    [
        pytest.param(tick(), (), id="nothing-waiting-does-nothing"),
        pytest.param(tick(candidates=(EPISODE,)), (start(EPISODE),), id="a-waiting-job-starts-on-a-calm-host"),
        pytest.param(tick(candidates=(EPISODE, FILM)), (start(EPISODE),), id="at-most-one-job-starts-a-tick"),
        pytest.param(tick(sample=BUSY_CPU, candidates=(EPISODE,)), (), id="a-busy-cpu-holds-the-job-back"),
        pytest.param(
            tick(candidates=(EPISODE,), running=(encoding(7, started=1), encoding(8, started=2))),
            (),
            id="no-start-when-every-slot-is-taken",
        ),
        pytest.param(
            tick(candidates=(EPISODE,), running=(encoding(7, started=1, suspended=True), encoding(8, started=2))),
            (Resume(7, "memory 30% with 8 GiB available is back under the limits"),),  # and no Start
            id="a-suspended-encode-still-holds-its-slot",
        ),
        pytest.param(
            tick(candidates=(EPISODE, FILM), available=frozenset({"movies"})),
            (start(FILM),),
            id="a-held-or-unreadable-library-is-skipped",
        ),
        pytest.param(
            tick(candidates=(EPISODE,), configured=frozenset({"movies"}), available=frozenset({"movies"})),
            (Cancel(1, GONE),),
            id="a-waiting-job-of-a-removed-library-is-cancelled",
        ),
        pytest.param(
            tick(
                running=(encoding(7, started=1),),
                configured=frozenset({"movies"}),
                available=frozenset({"movies"}),
            ),
            (Cancel(7, GONE),),
            id="an-encode-of-a-removed-library-is-cancelled",
        ),
        pytest.param(
            tick(running=(encoding(7, started=1, stopping=True),), configured=frozenset(), available=frozenset()),
            (),
            id="an-encode-already-stopping-is-not-cancelled-twice",
        ),
        pytest.param(
            tick(sample=MEMORY_PRESSED, running=(encoding(7, started=1), encoding(8, started=2))),
            (Suspend(8, "memory 97% is at or above 90%"),),
            id="memory-pressure-suspends-the-newest-encode",
        ),
        pytest.param(
            tick(sample=MEMORY_PRESSED, running=(encoding(7, started=1), encoding(8, started=2, suspended=True))),
            (Suspend(7, "memory 97% is at or above 90%"),),
            id="then-the-next-newest",
        ),
        pytest.param(
            tick(sample=MEMORY_PRESSED, running=(encoding(7, started=1, has_process=False),)),
            (),
            id="an-encode-not-started-yet-cannot-be-suspended",
        ),
        pytest.param(
            tick(running=(encoding(7, started=1, suspended=True), encoding(8, started=2, suspended=True))),
            (Resume(7, "memory 30% with 8 GiB available is back under the limits"),),
            id="calm-resumes-the-oldest-suspended-encode",
        ),
        pytest.param(
            tick(
                sample=replace(CALM, memory_percent=85.0),
                running=(encoding(7, started=1, suspended=True),),
            ),
            (),
            id="between-the-limits-a-suspended-encode-waits",
        ),
        pytest.param(
            tick(running=(encoding(7, started=1, last_progress=NOW - 300),)),
            (Fail(7, FailureKind.TEMPORARY, STALL, stalled=True),),
            id="an-encode-without-progress-for-stall-timeout-is-hung",
        ),
        pytest.param(
            tick(running=(encoding(7, started=1, last_progress=NOW - 299),)),
            (),
            id="just-under-stall-timeout-is-not-hung",
        ),
        pytest.param(
            tick(sample=MEMORY_PRESSED, running=(encoding(7, started=1, last_progress=NOW - 900, suspended=True),)),
            (),
            id="a-suspended-encode-is-not-hung",
        ),
        pytest.param(
            tick(sample=MEMORY_PRESSED, running=(encoding(7, started=1, last_progress=NOW - 900),)),
            (Suspend(7, "memory 97% is at or above 90%"),),
            id="an-encode-suspended-in-this-tick-is-not-hung",
        ),
        pytest.param(
            tick(running=(encoding(7, started=1, last_progress=NOW - 900, stopping=True),)),
            (),
            id="a-stopping-encode-is-not-hung-again",
        ),
        pytest.param(
            tick(
                running=(encoding(7, started=1, last_progress=NOW - 900),),
                configured=frozenset({"movies"}),
                available=frozenset({"movies"}),
            ),
            (Cancel(7, GONE),),
            id="a-hung-encode-of-a-removed-library-is-cancelled-not-failed",
        ),
        pytest.param(
            tick(unrecorded=(Unrecorded(9, FailureKind.COUNTED, "HandBrakeCLI exited with code 3"),)),
            (Fail(9, FailureKind.COUNTED, "HandBrakeCLI exited with code 3"),),
            id="a-failure-not-recorded-is-recorded-again",
        ),
        pytest.param(
            tick(
                sample=MEMORY_PRESSED,
                candidates=(EPISODE,),
                running=(encoding(7, started=1),),
                unrecorded=(Unrecorded(9, FailureKind.PERMANENT, "no title"),),
            ),
            (Fail(9, FailureKind.PERMANENT, "no title"), Suspend(7, "memory 97% is at or above 90%")),
            id="order-record-then-relieve-pressure-and-start-nothing-under-pressure",
        ),
    ],
)
def test_decide(facts: Tick, expected: tuple[object, ...]) -> None:
    assert decide(facts).commands == expected


def test_a_refusal_says_why_and_keeps_the_hysteresis() -> None:
    refused = decide(tick(sample=BUSY_CPU, candidates=(EPISODE,)))

    assert refused.blocked and "CPU" in refused.blocked[0]
    assert (refused.strained, refused.short_of_resources) == (True, True)
    # Just under the limit is not enough once strained: the margin must be cleared first.
    again = decide(tick(sample=replace(CALM, cpu_percent=78.0), candidates=(EPISODE,), strained=True))
    assert again.commands == () and again.blocked
    assert decide(tick(sample=replace(CALM, cpu_percent=70.0), candidates=(EPISODE,), strained=True)).commands == (
        start(EPISODE),
    )


def test_nothing_waiting_clears_the_refusal() -> None:
    assert decide(tick(strained=True)).blocked == ()
    assert decide(tick(strained=True)).short_of_resources is False


def test_outside_the_time_windows_nothing_starts() -> None:
    night_only = Limits(min_free_memory=GIB, min_free_disk=GIB, max_jobs=2, windows=("22:00-07:00",))
    decision = decide(tick(limits=night_only, candidates=(EPISODE,)))

    assert decision.commands == ()
    assert any("time windows" in reason for reason in decision.blocked)
    assert decide(tick(limits=night_only, minute_of_day=23 * 60, candidates=(EPISODE,))).commands == (start(EPISODE),)


@pytest.mark.parametrize(
    "paused, broken, held, unpublishable, expected",
    [
        pytest.param((), (), (), (), frozenset(), id="all-available"),
        pytest.param(("tv",), (), (), (), frozenset({"tv"}), id="a-paused-library"),
        pytest.param((), ("tv",), (), ("movies",), frozenset({"tv", "movies"}), id="broken-and-unpublishable"),
        pytest.param((), (), ("tv",), (), frozenset({"tv"}), id="a-held-library"),
        pytest.param((), (), ("old",), (), frozenset(), id="a-hold-on-a-removed-library-does-not-count"),
    ],
)
def test_unavailable_libraries(
    paused: tuple[str, ...],
    broken: tuple[str, ...],
    held: tuple[str, ...],
    unpublishable: tuple[str, ...],
    expected: frozenset[str],
) -> None:
    assert (
        unavailable_libraries(
            configured={"tv", "movies"}, paused=paused, broken=broken, held=held, unpublishable=unpublishable
        )
        == expected
    )


WHOLE = Verification(True, "output is 4.0 s long for a 4.0 s source, 350000 bytes")
TRUNCATED = Verification(False, "output is 2.0 s long but the source is 4.0 s: truncated source?")
NO_TITLE = Verification(False, "HandBrakeCLI found no title in the source", FailureKind.PERMANENT)
DISK_FULL = Verification(False, "the archive's disk filled during the encode", FailureKind.TEMPORARY)


@pytest.mark.parametrize(
    "ended, expected",
    [
        pytest.param(Ended(1, stopped=False, verification=WHOLE), Publish(1), id="a-whole-encode-is-published"),
        pytest.param(
            Ended(1, stopped=False, verification=TRUNCATED),
            Fail(1, FailureKind.COUNTED, TRUNCATED.reason),
            id="a-truncated-encode-fails-counted",
        ),
        pytest.param(
            Ended(1, stopped=False, verification=NO_TITLE),
            Fail(1, FailureKind.PERMANENT, NO_TITLE.reason),
            id="no-title-fails-permanently",
        ),
        pytest.param(
            Ended(1, stopped=False, verification=DISK_FULL),
            Fail(1, FailureKind.TEMPORARY, DISK_FULL.reason),
            id="a-full-disk-fails-temporarily",
        ),
        pytest.param(Ended(1, stopped=True, verification=WHOLE), Discard(1), id="a-cancelled-encode-is-thrown-away"),
        pytest.param(
            Ended(1, stopped=True, stall=STALL), Discard(1), id="a-hung-encode-cancelled-meanwhile-is-thrown-away"
        ),
        pytest.param(
            Ended(1, stopped=False, stall=STALL),
            Fail(1, FailureKind.TEMPORARY, f"{STALL}; killed, will be retried", stalled=True),
            id="a-hung-encode-fails-temporarily",
        ),
        pytest.param(
            Ended(1, stopped=False, source_present=False, verification=WHOLE),
            Fail(
                1,
                FailureKind.PERMANENT,
                "the source is gone (deleted or moved during its encode); "
                "permanent: not retried, nothing was published",
            ),
            id="a-source-gone-during-the-encode-is-permanent-even-if-the-output-is-whole",
        ),
        pytest.param(
            Ended(1, stopped=False, source_present=False, library_readable=False),
            Release(
                1,
                "the source cannot be read on this host during its encode: its library's folder is missing "
                "or unreadable (a missing mount?); released for another host, no attempt spent",
            ),
            id="a-source-gone-with-its-mount-is-released-for-another-host",
        ),
        pytest.param(
            Ended(1, stopped=False, source_changed="source changed during the encode", verification=WHOLE),
            Fail(1, FailureKind.TEMPORARY, "source changed during the encode"),
            id="a-source-rewritten-during-the-encode-is-never-published",
        ),
    ],
)
def test_conclude(ended: Ended, expected: object) -> None:
    assert conclude(ended) == expected


@pytest.mark.parametrize(
    "facts, expected",
    [
        pytest.param({}, None, id="nothing-in-the-way-starts"),
        pytest.param(
            {"source_present": False},
            Fail(
                1,
                FailureKind.PERMANENT,
                "the source is gone (deleted or moved when its encode started); "
                "permanent: not retried, nothing was published",
            ),
            id="a-source-gone-before-the-start-is-permanent",
        ),
        pytest.param(
            {"source_present": False, "library_readable": False},
            Release(
                1,
                "the source cannot be read on this host when its encode started: its library's folder is "
                "missing or unreadable (a missing mount?); released for another host, no attempt spent",
            ),
            id="a-source-gone-with-its-mount-is-released-for-another-host",
        ),
        pytest.param(
            {"in_the_way": "a file hb2r did not make"},
            Fail(1, FailureKind.PERMANENT, "a file hb2r did not make"),
            id="a-foreign-output-is-permanent",
        ),
        pytest.param(
            {"elsewhere": "TV is on another mount"},
            Fail(1, FailureKind.TEMPORARY, "TV is on another mount"),
            id="an-output-folder-on-another-mount-is-temporary",
        ),
    ],
)
def test_before_start(facts: dict[str, Any], expected: Fail | Release | None) -> None:
    arguments: dict[str, Any] = {
        "job_id": 1,
        "source_present": True,
        "library_readable": True,
        "in_the_way": None,
        "elsewhere": None,
    }
    assert before_start(**{**arguments, **facts}) == expected
