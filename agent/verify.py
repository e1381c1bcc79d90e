"""Is an encode whole? A pure decision from what HandBrakeCLI said and what the files measure.

HandBrakeCLI exits 0 on a truncated source and writes a short output. Only the duration
check catches that, so an encode counts as whole only when the exit code is 0, WorkDone
reported no error, the output is not empty, and its duration is within max(1 s, 2 %) of
the source's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeGuard

_HANDBRAKE_ERRORS = {1: "cancelled", 2: "wrong input", 3: "initialisation failed", 4: "unknown error", 5: "read error"}


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str


def verify(
    *,
    exit_code: int,
    work_done_error: int | None,
    output_size: int,
    source_duration: float | None,
    output_duration: float | None,
) -> Verification:
    """Given what HandBrakeCLI reported and what the files measure, return whether the encode is whole.

    `work_done_error` is None when HandBrakeCLI never reported WorkDone; a duration is None
    when it could not be measured. The durations must agree within max(1 s, 2 % of the source).
    """
    if exit_code != 0:
        return Verification(False, f"HandBrakeCLI exited with code {exit_code}")
    if work_done_error is None:
        return Verification(False, "HandBrakeCLI exited 0 but never reported WorkDone: the encode did not finish")
    if work_done_error != 0:
        meaning = _HANDBRAKE_ERRORS.get(work_done_error, "unknown code")
        return Verification(False, f"HandBrakeCLI exited 0 but reported WorkDone error {work_done_error} ({meaning})")
    if output_size <= 0:
        return Verification(False, f"output is empty ({output_size} bytes)")
    if not _measured(source_duration):
        return Verification(False, "source duration is unknown: cannot tell whether the output is complete")
    if not _measured(output_duration):
        return Verification(False, "output duration is unknown: the output is not a readable video")
    allowed = max(1.0, 0.02 * source_duration)
    difference = output_duration - source_duration
    if abs(difference) > allowed:
        cause = "truncated source?" if difference < 0 else "output longer than its source?"
        return Verification(
            False,
            f"output is {output_duration:.1f} s long but the source is {source_duration:.1f} s "
            f"(allowed difference {allowed:.1f} s): {cause}",
        )
    return Verification(
        True, f"output is {output_duration:.1f} s long for a {source_duration:.1f} s source, {output_size} bytes"
    )


def _measured(duration: float | None) -> TypeGuard[float]:
    return duration is not None and math.isfinite(duration) and duration >= 0
