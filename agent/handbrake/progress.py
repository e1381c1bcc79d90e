"""Read HandBrakeCLI's progress from its stdout, a chunk at a time.

Why a pure, incremental parser: the runner reads stdout in whatever pieces the pipe hands
over, and a piece may end in the middle of a line or of a JSON block. Keeping the parser
free of I/O lets tests replay recorded HandBrakeCLI output in one piece, byte by byte or in
random chunks and demand the same result.

What HandBrakeCLI 1.6 writes with `--json` (see tests/fixtures/handbrake/): pretty-printed
JSON blocks, each opened by a line `Label: {` and closed by a line that is just `}`
(`Version: {...}`, then `Progress: {...}` every half second), with libdvdread's banner and
other noise between them. Only `Progress` blocks matter: state WORKING carries the percent
(`Working.Progress`, 0..1, per pass), the current rate and the ETA; state WORKDONE carries
the job's error code (0 = done). Without `--json` it writes `\\r`-separated lines such as
`Encoding: task 1 of 1, 45.20 % (120.5 fps, avg 110.2 fps, ETA 00h01m02s)`; those are read too.

HandBrake reports "not known yet" as an ETA of -1 hours and, for the first seconds, a rate
of 0 or a meaningless 1e-7; both become None here rather than a misleading number.
Nothing in the stream makes the parser raise: a block that is not valid JSON is skipped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

# A line that ends in `Progress: {` opens a progress block (a banner may precede it on the line).
_PROGRESS_HEADER = re.compile(r"(?:^|[^A-Za-z])Progress: \{\s*$")
# Any other `Label: {` line opens a block hb2r skips (Version, JSON Title Set, ...).
_OTHER_HEADER = re.compile(r"^[A-Za-z][A-Za-z ]*: \{\s*$")
_PLAIN = re.compile(
    r"Encoding: task (?P<task>\d+) of (?P<tasks>\d+), (?P<percent>\d+(?:\.\d+)?) %"
    r"(?: \((?P<fps>\d+(?:\.\d+)?) fps, avg \d+(?:\.\d+)? fps, ETA (?P<h>\d+)h(?P<m>\d+)m(?P<s>\d+)s\))?"
)
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Bounds on what garbage can make the parser hold: one line, one block.
MAX_LINE_CHARS = 64 * 1024
MAX_BLOCK_LINES = 1000
# Below this HandBrake's "Rate" is a placeholder, not a measurement.
_MIN_FPS = 0.01


@dataclass(frozen=True)
class Progress:
    """Where an encode is: percent of the current pass (0-100), frames per second and
    seconds left when HandBrake knows them, and which pass of how many."""

    percent: float
    fps: float | None
    eta_seconds: int | None
    pass_number: int | None
    pass_count: int | None

    @property
    def overall_percent(self) -> float:
        """Given the pass and the pass count, return the percent of the whole job (0-100)."""
        if self.pass_number is None or self.pass_count is None or not 1 <= self.pass_number <= self.pass_count:
            return self.percent
        return ((self.pass_number - 1) * 100.0 + self.percent) / self.pass_count


@dataclass(frozen=True)
class WorkDone:
    """HandBrake finished the job; `error` 0 means success (HandBrake's hb_error_code)."""

    error: int


class ProgressParser:
    """Turns pieces of HandBrakeCLI's stdout into Progress and WorkDone events, in order."""

    def __init__(self) -> None:
        self._partial_line = ""
        self._block: list[str] | None = None  # lines of the Progress block being read
        self._skipping_block = False  # inside a block hb2r does not need

    def feed(self, text: str) -> list[Progress | WorkDone]:
        """Given the next piece of stdout (any length, split anywhere), return the events
        its complete lines finish; the rest waits for the next piece."""
        if "\n" not in text and "\r" not in text:
            self._partial_line = (self._partial_line + text)[:MAX_LINE_CHARS]
            return []
        *lines, rest = _LINE_BREAK.split(self._partial_line + text)
        self._partial_line = rest[:MAX_LINE_CHARS]
        return [event for line in lines if (event := self._line(line)) is not None]

    def finish(self) -> list[Progress | WorkDone]:
        """At the end of the stream, return the events of a last line without a line break;
        a block left open is dropped."""
        line, self._partial_line = self._partial_line, ""
        event = self._line(line) if line else None
        self._block = None
        self._skipping_block = False
        return [event] if event is not None else []

    def _line(self, line: str) -> Progress | WorkDone | None:
        if _PROGRESS_HEADER.search(line):
            self._block, self._skipping_block = [], False
            return None
        if self._block is not None:
            if line.rstrip() == "}":
                block, self._block = self._block, None
                return _event_from_block(block)
            self._block.append(line)
            if len(self._block) > MAX_BLOCK_LINES:
                self._block = None
            return None
        if _OTHER_HEADER.match(line):
            self._skipping_block = True
            return None
        if self._skipping_block:
            if line.rstrip() == "}":
                self._skipping_block = False
            return None
        return _event_from_plain_line(line)


def _event_from_block(lines: list[str]) -> Progress | WorkDone | None:
    try:
        data = json.loads("{" + "\n".join(lines) + "}")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    state = data.get("State")
    if state == "WORKING":
        return _progress_from_working(data.get("Working"))
    if state == "WORKDONE":
        work_done = data.get("WorkDone")
        error = _whole_number(work_done.get("Error")) if isinstance(work_done, dict) else None
        return WorkDone(error=error) if error is not None else None
    return None


def _progress_from_working(working: Any) -> Progress | None:
    if not isinstance(working, dict):
        return None
    fraction = _number(working.get("Progress"))
    if fraction is None:
        return None
    rate = _number(working.get("Rate"))
    hours, minutes, seconds = (_whole_number(working.get(key)) for key in ("Hours", "Minutes", "Seconds"))
    eta = (
        hours * 3600 + minutes * 60 + seconds
        if hours is not None and minutes is not None and seconds is not None and min(hours, minutes, seconds) >= 0
        else None
    )
    pass_number, pass_count = _whole_number(working.get("Pass")), _whole_number(working.get("PassCount"))
    return Progress(
        percent=min(max(fraction * 100.0, 0.0), 100.0),
        fps=rate if rate is not None and rate >= _MIN_FPS else None,
        eta_seconds=eta,
        pass_number=pass_number if pass_number is not None and pass_number >= 1 else None,
        pass_count=pass_count if pass_count is not None and pass_count >= 1 else None,
    )


def _event_from_plain_line(line: str) -> Progress | None:
    match = _PLAIN.search(line)
    if match is None:
        return None
    eta = int(match["h"]) * 3600 + int(match["m"]) * 60 + int(match["s"]) if match["h"] is not None else None
    fps = float(match["fps"]) if match["fps"] is not None else None
    return Progress(
        percent=min(float(match["percent"]), 100.0),
        fps=fps if fps is not None and fps >= _MIN_FPS else None,
        eta_seconds=eta,
        pass_number=int(match["task"]),
        pass_count=int(match["tasks"]),
    )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _whole_number(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None
