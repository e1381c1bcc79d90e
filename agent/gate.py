"""The resource gate: may another encode start now, and must a running one pause?

Pure by design, like the planner: the caller measures (`resources.Sampler`), reads the clock and
counts its jobs, then passes them in; these functions only compare numbers and explain the
answer in sentences an operator can act on ("CPU 91% is at or above the 80% limit"). Every
failing reason is returned, not the first, so one log line says everything that stands in the
way.

Hysteresis keeps the gate from flapping around a limit: once blocked, CPU and memory must fall
a few points below their limits before the next job starts, and a suspended encode resumes only
when memory is back under the admit thresholds, well below the level that suspended it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from agent.config.models import Limits
from agent.config.units import TimeWindow, format_bytes

# One x264 encode keeps about this many cores busy (HandBrake's frame threads plus filters).
ENCODE_CORES = 1.8
# Once blocked, CPU% and memory% must be this many points under their limits to admit again.
HYSTERESIS_PERCENT = 5
# Memory pressure suspends an encode at the admit limit plus this many points (capped at 99%).
PRESSURE_PERCENT = 10


@dataclass(frozen=True)
class Sample:
    """One measurement of the host: CPU and memory use, and the archive's free space in bytes."""

    cpu_percent: float
    memory_percent: float
    available_memory: int
    archive_free: int


@dataclass(frozen=True)
class Verdict:
    """Whether a new job may start; `reasons` lists every limit that stands in the way.

    `strained` says CPU or memory use was among them: the next decision then asks for the
    hysteresis margin. A refusal for other reasons (a full slot, the clock) does not.
    """

    admit: bool
    reasons: tuple[str, ...]
    strained: bool = False
    short_of_resources: bool = False  # CPU, memory or disk space stands in the way (not the clock or a slot)


@dataclass(frozen=True)
class Pressure:
    """Whether to suspend the newest running encode or resume one suspended encode, and why."""

    suspend: bool
    resume: bool
    reason: str


def max_jobs(limits: Limits, *, cpu_count: int) -> int:
    """Given the limits and the number of logical cores, return how many encodes may run at once.

    `max_jobs: auto` allows one encode per ENCODE_CORES cores, rounded up: an encode keeps
    that many busy only at full tilt (less on small sources, while it reads or muxes), and the
    CPU limit holds back the one too many. On 2 cores that is 2, on 4 it is 3, on 8 it is 5.
    """
    if limits.max_jobs != "auto":
        return limits.max_jobs
    return max(1, math.ceil(cpu_count / ENCODE_CORES))


def estimate_output_size(source_size: int) -> int:
    """Given a source's size in bytes, return a conservative estimate of its transcode's size.

    The source size itself: hb2r transcodes to shrink a library, and a transcode is rarely bigger
    than its source, so reserving that much errs on the side of never filling the archive.
    """
    return max(0, source_size)


def reserved_space(running: Iterable[tuple[int, int]]) -> int:
    """Given (estimated output size, bytes already written) of each running encode, return the
    space they are still expected to take: what the gate must keep free for them."""
    return sum(max(0, estimate - written) for estimate, written in running)


def in_windows(windows: Iterable[TimeWindow], minute_of_day: int) -> bool:
    """Given time windows and minutes after midnight, return whether jobs may start (no windows: always)."""
    windows = tuple(windows)
    return not windows or any(window.contains(minute_of_day) for window in windows)


def decide(
    *,
    sample: Sample,
    limits: Limits,
    running: int,
    cpu_count: int,
    minute_of_day: int,
    estimated_output: int,
    blocked_before: bool,
    reserved: int = 0,
) -> Verdict:
    """Given a sample, the limits, the running job count and the time, return whether a job may start.

    `blocked_before` is whether the previous verdict was `strained` (refused for CPU or memory
    use); then CPU and memory must be HYSTERESIS_PERCENT points under their limits.
    `estimated_output` is the new job's expected size; `reserved` is what the running encodes
    are still expected to write (their estimates less what their temp files already hold): free
    space they will take must not be promised to another encode.
    """
    reasons = [
        *_percent_reasons("CPU", sample.cpu_percent, limits.cpu_percent, blocked_before=blocked_before),
        *_percent_reasons("memory", sample.memory_percent, limits.memory_percent, blocked_before=blocked_before),
    ]
    strained = bool(reasons)
    if sample.available_memory < limits.min_free_memory:
        reasons.append(
            f"available memory {_size(sample.available_memory)} is below "
            f"min_free_memory {_size(limits.min_free_memory)}"
        )
    if sample.archive_free < limits.min_free_disk + estimated_output + reserved:
        running_part = f" + {_size(reserved)} reserved for running encodes" if reserved else ""
        reasons.append(
            f"archive free space {_size(sample.archive_free)} is below min_free_disk "
            f"{_size(limits.min_free_disk)} + estimated output {_size(estimated_output)}{running_part}"
        )
    short_of_resources = bool(reasons)
    most = max_jobs(limits, cpu_count=cpu_count)
    if running >= most:
        how = f" (max_jobs auto on {cpu_count} cores)" if limits.max_jobs == "auto" else ""
        reasons.append(f"{running} {'job' if running == 1 else 'jobs'} running, the most allowed is {most}{how}")
    if not in_windows(limits.windows, minute_of_day):
        windows = ", ".join(str(window) for window in limits.windows)
        now = f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"
        reasons.append(f"outside the time windows {windows} (it is {now})")
    return Verdict(
        admit=not reasons, reasons=tuple(reasons), strained=strained, short_of_resources=short_of_resources
    )


def memory_pressure(*, sample: Sample, limits: Limits, suspended: int) -> Pressure:
    """Given a sample, the limits and how many encodes hb2r has suspended, return what to do.

    Suspend the newest running encode when available memory is under half of min_free_memory,
    or memory use reaches the memory_percent limit + PRESSURE_PERCENT points (at most 99%; never
    under the limit itself, so `memory_percent: 100` never suspends on the percentage).
    Resume one suspended encode only once memory is back under the thresholds that admit a new
    job: the gap between the two levels is the hysteresis that keeps an encode from flapping.
    """
    suspend_percent = max(limits.memory_percent, min(99, limits.memory_percent + PRESSURE_PERCENT))
    if sample.available_memory < limits.min_free_memory / 2:
        return Pressure(
            suspend=True,
            resume=False,
            reason=f"available memory {_size(sample.available_memory)} is below half of "
            f"min_free_memory {_size(limits.min_free_memory)}",
        )
    if sample.memory_percent >= suspend_percent:
        return Pressure(
            suspend=True,
            resume=False,
            reason=f"memory {_percent(sample.memory_percent)} is at or above {suspend_percent}%",
        )
    if not suspended:
        return Pressure(suspend=False, resume=False, reason="no memory pressure")
    waiting = f"{suspended} suspended {'encode waits' if suspended == 1 else 'encodes wait'}"
    if sample.memory_percent >= limits.memory_percent:
        return Pressure(
            suspend=False,
            resume=False,
            reason=f"memory {_percent(sample.memory_percent)} is not yet below the "
            f"{limits.memory_percent}% limit; {waiting}",
        )
    if sample.available_memory < limits.min_free_memory:
        return Pressure(
            suspend=False,
            resume=False,
            reason=f"available memory {_size(sample.available_memory)} is not yet back to "
            f"min_free_memory {_size(limits.min_free_memory)}; {waiting}",
        )
    return Pressure(
        suspend=False,
        resume=True,
        reason=f"memory {_percent(sample.memory_percent)} with {_size(sample.available_memory)} available "
        f"is back under the limits",
    )


def _percent_reasons(name: str, value: float, limit: int, *, blocked_before: bool) -> list[str]:
    if limit >= 100:
        return []  # a 100% limit means no limit: psutil reports exactly 100.0 on a busy host
    if value >= limit:
        return [f"{name} {_percent(value)} is at or above the {limit}% limit"]
    resume_below = _resume_below(limit)
    if blocked_before and value >= resume_below:
        return [
            f"{name} {_percent(value)} is not yet below {_percent(resume_below)} "
            f"({HYSTERESIS_PERCENT} points under the {limit}% limit, so the gate does not flap)"
        ]
    return []


def _resume_below(limit: int) -> float:
    # A limit of 5% or less would otherwise never reopen; such limits get a margin of half.
    return limit - min(HYSTERESIS_PERCENT, limit / 2)


_size = format_bytes  # `3.2 GiB`; the worker words its messages as the gate does


def _percent(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0") + "%"


