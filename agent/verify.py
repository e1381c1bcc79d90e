"""Is an encode whole? A pure decision from what HandBrakeCLI said and what the files measure.

HandBrakeCLI exits 0 on a truncated source and writes a short output. Only the duration
check catches that, so an encode counts as whole only when the exit code is 0, WorkDone
reported no error, the output is not empty, and its duration is within max(1 s, 2 %) of
the source's.

HandBrakeCLI 1.6.1 also exits 0, WorkDone.Error 0, when the output's disk fills: its muxer
drops the writes that fail and says nothing, and the file's header still claims the whole
duration. So the header is not trusted alone: the last packets really in the file must end
near the source's end (`output_end`), and the file must hold at least the bytes HandBrakeCLI
says it muxed (`muxed_bytes`, from its `mux: track N, ... bytes` lines).

Every failure is typed (`FailureKind`): an encode that failed while the archive's disk was
(nearly) full is TEMPORARY, not the file's fault: its attempt is not counted and it is
retried once the gate sees room again. A failure that retrying cannot fix is PERMANENT: the
job is dead at once instead of being tried `retry.attempts` times:
- HandBrakeCLI finds no title in the source. HandBrakeCLI 1.6.1 on a file that is no video
  (text, random bytes named .mkv) prints "scan: unrecognized file type", "libhb: scan thread
  found 0 valid title(s)" and "No title found." to stderr and exits 2. The same bytes give the
  same answer every time. (A source that could not be read at all is caught before this, by
  the runner's check that the source is still there.)
- (not permanent) With `verify: {decode: true}`, an output that ffmpeg cannot decode whole
  (`decode_verdict`) is a COUNTED failure: the next encode may well come out whole.
- The source is gone when the job starts or when its encode ends, while its library's folder
  is still readable: the file was deleted or moved; a pass queues its new path, if any, as a
  new job. When the library's folder itself cannot be read (a mount went away) the failure is
  TEMPORARY instead: the file may well come back with its mount.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeGuard

_HANDBRAKE_ERRORS = {1: "cancelled", 2: "wrong input", 3: "initialisation failed", 4: "unknown error", 5: "read error"}
# Less free space than this (or than the bytes an encode lost) after a failed encode: the disk filled.
DISK_FULL_MARGIN = 16 * 1024 * 1024
# What HandBrakeCLI's stderr says when its scan finds nothing it can encode in the source.
_NO_TITLE_LINES = ("No title found", "found 0 valid title")


class FailureKind(StrEnum):
    """How a failed job goes on.

    TEMPORARY: the cause lies outside the file and passes by itself (a full disk, a source
    being rewritten): the attempt is not counted; the job is retried after the backoff.
    COUNTED: the encode failed and may fail again (a broken source, a crash): counted
    against `retry.attempts`, then the job is dead.
    PERMANENT: retrying cannot help until an operator acts (a file hb2r did not make is in
    the way, a source with no video title, a source that is gone): the job is dead at once,
    with the reason.
    """

    TEMPORARY = "temporary"
    COUNTED = "counted"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Verification:
    ok: bool
    reason: str
    kind: FailureKind = FailureKind.COUNTED  # how to fail the job when not ok


def verify(
    *,
    exit_code: int,
    work_done_error: int | None,
    output_size: int,
    source_duration: float | None,
    output_duration: float | None,
    output_end: float | None = None,
    muxed_bytes: int | None = None,
    archive_free: int | None = None,
    stderr_tail: Sequence[str] = (),
) -> Verification:
    """Given what HandBrakeCLI reported and what the files measure, return whether the encode is whole.

    `work_done_error` is None when HandBrakeCLI never reported WorkDone; a duration is None
    when it could not be measured. The durations must agree within max(1 s, 2 % of the source).
    `output_end` is when the output's last packet ends (None: not measured), `muxed_bytes` the
    payload HandBrakeCLI says it wrote (None: it did not say), `archive_free` the archive's free
    bytes measured after the encode, with its output still there (None: not measured);
    `stderr_tail` HandBrakeCLI's last stderr lines.
    """
    if exit_code != 0 and _found_no_title(stderr_tail):
        return Verification(
            False,
            f"HandBrakeCLI found no title in the source (exit code {exit_code}, \"No title found.\"): "
            "it is not a video HandBrake can read; permanent: not retried",
            FailureKind.PERMANENT,
        )
    verification = _verify_content(
        exit_code=exit_code,
        work_done_error=work_done_error,
        output_size=output_size,
        source_duration=source_duration,
        output_duration=output_duration,
        output_end=output_end,
        muxed_bytes=muxed_bytes,
    )
    if verification.ok or archive_free is None:
        return verification
    lost = max(0, (muxed_bytes or 0) - output_size)
    if archive_free < max(lost, DISK_FULL_MARGIN):
        return Verification(
            False,
            f"the archive's disk filled during the encode ({archive_free} bytes free): {verification.reason}; "
            "temporary: retried when there is room, the attempt is not counted",
            FailureKind.TEMPORARY,
        )
    return verification


def _verify_content(
    *,
    exit_code: int,
    work_done_error: int | None,
    output_size: int,
    source_duration: float | None,
    output_duration: float | None,
    output_end: float | None,
    muxed_bytes: int | None,
) -> Verification:
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
    if muxed_bytes is not None and output_size < muxed_bytes:
        return Verification(
            False,
            f"output holds {output_size} bytes but HandBrakeCLI muxed {muxed_bytes}: writes were lost",
        )
    if output_end is not None and output_end < source_duration - allowed:
        return Verification(
            False,
            f"output's header says {output_duration:.1f} s but its last packet ends at {output_end:.1f} s "
            f"of a {source_duration:.1f} s source: the file was cut short",
        )
    return Verification(
        True, f"output is {output_duration:.1f} s long for a {source_duration:.1f} s source, {output_size} bytes"
    )


def _measured(duration: float | None) -> TypeGuard[float]:
    return duration is not None and math.isfinite(duration) and duration >= 0


def source_gone(*, when: str, library_readable: bool) -> Verification:
    """Given when the source was found gone ("start" or "end" of the encode) and whether its
    library's folder can still be read, return the failure: permanent if only the file went."""
    moment = "when its encode started" if when == "start" else "during its encode"
    if library_readable:
        return Verification(
            False,
            f"the source is gone (deleted or moved {moment}); permanent: not retried, nothing was published",
            FailureKind.PERMANENT,
        )
    return Verification(
        False,
        f"the source is gone {moment} and its library's folder cannot be read (a missing mount?); "
        "temporary: retried later, the attempt is not counted",
        FailureKind.TEMPORARY,
    )


def decode_verdict(*, exit_code: int, errors: Sequence[str]) -> Verification | None:
    """Given how decoding the whole output went (ffmpeg's exit code and the error lines it printed
    at `-v error`), return the failure if it did not decode cleanly, else None.

    Any error line counts, even with exit code 0: ffmpeg goes on past a damaged frame and exits 0.
    """
    if exit_code == 0 and not errors:
        return None
    said = "; ".join(errors) if errors else "no message"
    return Verification(
        False,
        f"the output does not decode cleanly (ffmpeg exit code {exit_code}): {said}; "
        "it would not play whole: nothing was published",
    )


def _found_no_title(stderr_tail: Sequence[str]) -> bool:
    return any(marker in line for line in stderr_tail for marker in _NO_TITLE_LINES)
