"""Decision tables for the resource gate: may a job start, and must an encode pause?

Unless a row says otherwise the host is quiet (CPU 20 %, memory 40 %, 8 GiB available, 100 GiB
free in the archive), the limits are the defaults (CPU and memory 80 %, min_free_memory 2 GiB,
min_free_disk 5 GiB, max_jobs auto), the machine has 2 cores, nothing runs, it is noon and the
new job's output is estimated at 1 GiB. Rows compare whole verdicts: the reasons are what an
operator reads in the log and in `hb2r jobs`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from agent.config.models import Limits
from agent.gate import (
    Pressure,
    Sample,
    Verdict,
    decide,
    estimate_output_size,
    in_windows,
    max_jobs,
    memory_pressure,
    reserved_space,
)

GiB = 1024**3
QUIET = Sample(cpu_percent=20.0, memory_percent=40.0, available_memory=8 * GiB, archive_free=100 * GiB)
NOON = 12 * 60


def at(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


def limits(**overrides: Any) -> Limits:
    return Limits.model_validate(overrides)


def verdict_for(
    *,
    sample: dict[str, Any] | None = None,
    limit: dict[str, Any] | None = None,
    running: int = 0,
    cpu_count: int = 2,
    clock: str = "12:00",
    estimated_output: int = GiB,
    blocked_before: bool = False,
    reserved: int = 0,
) -> Verdict:
    return decide(
        sample=dataclasses.replace(QUIET, **(sample or {})),
        limits=limits(**(limit or {})),
        running=running,
        cpu_count=cpu_count,
        minute_of_day=at(clock),
        estimated_output=estimated_output,
        blocked_before=blocked_before,
        reserved=reserved,
    )


ADMIT = Verdict(admit=True, reasons=())


def refuse(*reasons: str) -> Verdict:
    strained = any(reason.startswith(("CPU", "memory")) for reason in reasons)
    # Short of resources: CPU, memory or disk stand in the way (a full slot or the clock do not).
    short = strained or any(reason.startswith(("available memory", "archive free space")) for reason in reasons)
    return Verdict(admit=False, reasons=reasons, strained=strained, short_of_resources=short)


@pytest.mark.parametrize(
    "given, expected",
    [
        pytest.param({}, ADMIT, id="a-quiet-host-admits-a-job"),
        pytest.param(
            {"sample": {"cpu_percent": 91.0}},
            refuse("CPU 91% is at or above the 80% limit"),
            id="busy-cpu-blocks",
        ),
        pytest.param(
            {"sample": {"cpu_percent": 80.0}},
            refuse("CPU 80% is at or above the 80% limit"),
            id="cpu-exactly-at-the-limit-blocks",
        ),
        pytest.param({"sample": {"cpu_percent": 79.9}}, ADMIT, id="cpu-just-under-the-limit-admits"),
        pytest.param(
            {"sample": {"memory_percent": 85.5}},
            refuse("memory 85.5% is at or above the 80% limit"),
            id="high-memory-use-blocks",
        ),
        pytest.param(
            {"sample": {"available_memory": int(1.5 * GiB)}},
            refuse("available memory 1.5 GiB is below min_free_memory 2 GiB"),
            id="too-little-available-memory-blocks",
        ),
        pytest.param(
            {"sample": {"available_memory": 2 * GiB}}, ADMIT, id="available-memory-exactly-min-free-memory-admits"
        ),
        pytest.param(
            {"sample": {"archive_free": int(3.2 * GiB)}, "estimated_output": int(1.1 * GiB)},
            refuse("archive free space 3.2 GiB is below min_free_disk 5 GiB + estimated output 1.1 GiB"),
            id="archive-below-min-free-disk-blocks",
        ),
        pytest.param(
            {"sample": {"archive_free": 6 * GiB}, "estimated_output": int(1.5 * GiB)},
            refuse("archive free space 6 GiB is below min_free_disk 5 GiB + estimated output 1.5 GiB"),
            id="room-for-min-free-disk-but-not-for-the-output-blocks",
        ),
        pytest.param(
            {"sample": {"archive_free": 6 * GiB}, "estimated_output": GiB},
            ADMIT,
            id="room-for-exactly-min-free-disk-plus-output-admits",
        ),
        pytest.param(
            {"sample": {"archive_free": 7 * GiB}, "running": 1, "reserved": 2 * GiB},
            refuse(
                "archive free space 7 GiB is below min_free_disk 5 GiB + estimated output 1 GiB "
                "+ 2 GiB reserved for running encodes"
            ),
            id="space-a-running-encode-will-still-write-is-not-promised-to-a-new-one",
        ),
        pytest.param(
            {"sample": {"archive_free": 8 * GiB}, "running": 1, "reserved": 2 * GiB},
            ADMIT,
            id="room-for-the-running-encodes-and-the-new-one-admits",
        ),
        pytest.param(
            {"running": 2},
            refuse("2 jobs running, the most allowed is 2 (max_jobs auto on 2 cores)"),
            id="auto-on-two-cores-runs-two-jobs-at-a-time",
        ),
        pytest.param(
            {
                "sample": {"cpu_percent": 100.0, "memory_percent": 100.0},
                "limit": {"cpu_percent": 100, "memory_percent": 100},
            },
            ADMIT,
            id="limits-of-100-percent-never-refuse-even-on-a-saturated-host",
        ),
        pytest.param(
            {"running": 2, "limit": {"max_jobs": 2}},
            refuse("2 jobs running, the most allowed is 2"),
            id="running-at-an-explicit-max-jobs-blocks",
        ),
        pytest.param({"running": 2, "limit": {"max_jobs": 3}}, ADMIT, id="running-under-max-jobs-admits"),
        pytest.param(
            {"limit": {"windows": ["01:00-05:00"]}},
            refuse("outside the time windows 01:00-05:00 (it is 12:00)"),
            id="outside-the-window-blocks",
        ),
        pytest.param({"limit": {"windows": ["01:00-05:00"]}, "clock": "01:00"}, ADMIT, id="window-start-is-inside"),
        pytest.param(
            {"limit": {"windows": ["01:00-05:00"]}, "clock": "05:00"},
            refuse("outside the time windows 01:00-05:00 (it is 05:00)"),
            id="window-end-is-outside",
        ),
        pytest.param(
            {"limit": {"windows": ["22:00-07:00"]}, "clock": "23:30"},
            ADMIT,
            id="window-across-midnight-admits-before-midnight",
        ),
        pytest.param(
            {"limit": {"windows": ["22:00-07:00"]}, "clock": "06:59"},
            ADMIT,
            id="window-across-midnight-admits-after-midnight",
        ),
        pytest.param(
            {"limit": {"windows": ["22:00-07:00"]}, "clock": "14:00"},
            refuse("outside the time windows 22:00-07:00 (it is 14:00)"),
            id="window-across-midnight-blocks-in-the-afternoon",
        ),
        pytest.param(
            {"limit": {"windows": ["01:00-05:00", "12:00-13:00"]}, "clock": "12:30"},
            ADMIT,
            id="inside-any-one-of-several-windows-admits",
        ),
        pytest.param(
            {
                "sample": {
                    "cpu_percent": 95.0,
                    "memory_percent": 90.0,
                    "available_memory": GiB,
                    "archive_free": 2 * GiB,
                },
                "running": 2,
                "limit": {"windows": ["22:00-07:00", "13:00-14:00"]},
            },
            refuse(
                "CPU 95% is at or above the 80% limit",
                "memory 90% is at or above the 80% limit",
                "available memory 1 GiB is below min_free_memory 2 GiB",
                "archive free space 2 GiB is below min_free_disk 5 GiB + estimated output 1 GiB",
                "2 jobs running, the most allowed is 2 (max_jobs auto on 2 cores)",
                "outside the time windows 22:00-07:00, 13:00-14:00 (it is 12:00)",
            ),
            id="every-failing-limit-is-reported-not-just-the-first",
        ),
    ],
)
def test_gate_admits_only_when_every_limit_holds(given: dict[str, Any], expected: Verdict) -> None:
    assert verdict_for(**given) == expected


@pytest.mark.parametrize(
    "given, expected",
    [
        pytest.param(
            {"sample": {"cpu_percent": 77.0}, "blocked_before": True},
            refuse("CPU 77% is not yet below 75% (5 points under the 80% limit, so the gate does not flap)"),
            id="blocked-gate-stays-shut-with-cpu-just-under-the-limit",
        ),
        pytest.param(
            {"sample": {"cpu_percent": 75.0}, "blocked_before": True},
            refuse("CPU 75% is not yet below 75% (5 points under the 80% limit, so the gate does not flap)"),
            id="blocked-gate-stays-shut-with-cpu-exactly-at-the-margin",
        ),
        pytest.param(
            {"sample": {"cpu_percent": 74.0}, "blocked_before": True}, ADMIT, id="blocked-gate-reopens-below-margin"
        ),
        pytest.param({"sample": {"cpu_percent": 79.0}}, ADMIT, id="open-gate-admits-just-under-the-limit"),
        pytest.param(
            {"sample": {"memory_percent": 76.0}, "blocked_before": True},
            refuse("memory 76% is not yet below 75% (5 points under the 80% limit, so the gate does not flap)"),
            id="blocked-gate-stays-shut-with-memory-just-under-the-limit",
        ),
        pytest.param(
            {"sample": {"memory_percent": 74.0}, "blocked_before": True},
            ADMIT,
            id="blocked-gate-reopens-when-memory-falls-below-margin",
        ),
        pytest.param(
            {"sample": {"cpu_percent": 85.0}, "blocked_before": True},
            refuse("CPU 85% is at or above the 80% limit"),
            id="blocked-gate-over-the-limit-says-so-plainly",
        ),
        pytest.param(
            {"sample": {"cpu_percent": 1.9}, "limit": {"cpu_percent": 4}, "blocked_before": True},
            ADMIT,
            id="a-tiny-cpu-limit-can-still-reopen",
        ),
        pytest.param(
            {"running": 0, "blocked_before": True}, ADMIT, id="blocked-only-by-running-jobs-reopens-on-a-quiet-host"
        ),
    ],
)
def test_hysteresis_keeps_the_gate_from_flapping(given: dict[str, Any], expected: Verdict) -> None:
    assert verdict_for(**given) == expected


@pytest.mark.parametrize(
    "setting, cores, expected",
    [
        pytest.param("auto", 1, 1, id="auto-on-one-core-still-runs-one"),
        pytest.param("auto", 2, 2, id="auto-on-two-cores-runs-two-and-cpu-limit-holds-back-more"),
        pytest.param("auto", 4, 3, id="auto-on-four-cores-runs-three"),
        pytest.param("auto", 8, 5, id="auto-on-eight-cores-runs-five"),
        pytest.param("auto", 9, 5, id="auto-on-nine-cores-runs-five"),
        pytest.param("auto", 16, 9, id="auto-on-sixteen-cores-runs-nine"),
        pytest.param(1, 16, 1, id="explicit-one-on-sixteen-cores"),
        pytest.param(8, 2, 8, id="explicit-eight-on-two-cores-is-obeyed"),
    ],
)
def test_max_jobs(setting: int | str, cores: int, expected: int) -> None:
    assert max_jobs(limits(max_jobs=setting), cpu_count=cores) == expected


@pytest.mark.parametrize("size", [0, 1, 700 * 1024**2, 40 * GiB])
def test_output_is_estimated_as_large_as_its_source(size: int) -> None:
    assert estimate_output_size(size) == size


@pytest.mark.parametrize(
    "running, expected",
    [
        pytest.param([], 0, id="nothing-running-reserves-nothing"),
        pytest.param([(3 * GiB, 0)], 3 * GiB, id="a-just-started-encode-reserves-its-whole-estimate"),
        pytest.param([(3 * GiB, GiB), (2 * GiB, 0)], 4 * GiB, id="each-encode-reserves-what-it-has-yet-to-write"),
        pytest.param([(GiB, 2 * GiB)], 0, id="an-encode-past-its-estimate-reserves-nothing-more"),
    ],
)
def test_running_encodes_reserve_what_they_have_yet_to_write(running: list[tuple[int, int]], expected: int) -> None:
    assert reserved_space(running) == expected


@pytest.mark.parametrize("minute", [0, NOON, at("23:59")])
def test_no_windows_means_any_time(minute: int) -> None:
    assert in_windows((), minute)


@pytest.mark.parametrize(
    "sample, limit, suspended, expected",
    [
        pytest.param({}, {}, 0, Pressure(False, False, "no memory pressure"), id="quiet-host-does-nothing"),
        pytest.param(
            {"available_memory": int(0.9 * GiB)},
            {},
            0,
            Pressure(True, False, "available memory 922 MiB is below half of min_free_memory 2 GiB"),
            id="available-memory-under-half-the-minimum-suspends",
        ),
        pytest.param(
            {"available_memory": int(1.5 * GiB)},
            {},
            0,
            Pressure(False, False, "no memory pressure"),
            id="available-memory-under-the-minimum-only-blocks-new-jobs",
        ),
        pytest.param(
            {"memory_percent": 90.0},
            {},
            0,
            Pressure(True, False, "memory 90% is at or above 90%"),
            id="memory-ten-points-over-the-limit-suspends",
        ),
        pytest.param(
            {"memory_percent": 89.9},
            {},
            0,
            Pressure(False, False, "no memory pressure"),
            id="memory-over-the-limit-but-under-pressure-lets-encodes-run",
        ),
        pytest.param(
            {"memory_percent": 92.0},
            {},
            1,
            Pressure(True, False, "memory 92% is at or above 90%"),
            id="pressure-that-persists-suspends-the-next-encode",
        ),
        pytest.param(
            {"memory_percent": 85.0},
            {},
            1,
            Pressure(False, False, "memory 85% is not yet below the 80% limit; 1 suspended encode waits"),
            id="suspended-encode-waits-while-memory-is-over-the-limit",
        ),
        pytest.param(
            {"memory_percent": 50.0, "available_memory": int(1.5 * GiB)},
            {},
            2,
            Pressure(
                False,
                False,
                "available memory 1.5 GiB is not yet back to min_free_memory 2 GiB; 2 suspended encodes wait",
            ),
            id="suspended-encodes-wait-for-available-memory",
        ),
        pytest.param(
            {"memory_percent": 79.0, "available_memory": 3 * GiB},
            {},
            1,
            Pressure(False, True, "memory 79% with 3 GiB available is back under the limits"),
            id="suspended-encode-resumes-once-memory-is-under-the-limits",
        ),
        pytest.param(
            {"memory_percent": 99.0},
            {"memory_percent": 95},
            0,
            Pressure(True, False, "memory 99% is at or above 99%"),
            id="a-high-limit-suspends-at-ninety-nine",
        ),
        pytest.param(
            {"memory_percent": 98.5},
            {"memory_percent": 95},
            0,
            Pressure(False, False, "no memory pressure"),
            id="a-high-limit-lets-encodes-run-under-ninety-nine",
        ),
        pytest.param(
            {"memory_percent": 99.5},
            {"memory_percent": 100},
            0,
            Pressure(False, False, "no memory pressure"),
            id="a-limit-of-a-hundred-never-suspends-on-percent",
        ),
    ],
)
def test_memory_pressure(sample: dict[str, Any], limit: dict[str, Any], suspended: int, expected: Pressure) -> None:
    pressure = memory_pressure(sample=dataclasses.replace(QUIET, **sample), limits=limits(**limit), suspended=suspended)
    assert pressure == expected
