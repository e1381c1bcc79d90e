"""Parsers for the human-friendly values of the config file: durations, sizes, time windows.

They are plain functions so that the pydantic models, the error messages and the tests
share one definition of what `90s`, `5GiB` or `22:00-07:00` means. Integers are accepted
where a person would expect them to work: a bare number of seconds or of bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_WHOLE = re.compile(r"^\s*(?:\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)\s*)+$")
_SECONDS = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}

_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_RATE_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def parse_duration(value: object) -> timedelta:
    """Given `90s`, `15m`, `1h30m`, `2d` or a number of seconds, return a timedelta.

    Raise ValueError naming the accepted forms if the value is none of them.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 15m or 1h, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return _timedelta(value, value)
    if isinstance(value, str) and _SECONDS.match(value):  # "60" from a quoted "${VAR:-60}"
        return _timedelta(float(value), value)
    if isinstance(value, str) and _DURATION_WHOLE.match(value):
        seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(value))
        return _timedelta(seconds, value)
    raise ValueError(f"expected a duration like 90s, 15m or 1h, got {value!r}")


def _timedelta(seconds: float, value: object) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # .inf, .nan, or beyond timedelta's 999999999 days
        raise ValueError(f"a duration must be finite and under 999999999 days, got {value!r}") from None


def format_duration(value: timedelta) -> str:
    """Given a timedelta, return the shortest `1h30m`-style text that parses back to it."""
    total = value.total_seconds()
    if total != int(total):
        return f"{round(total * 1000)}ms"
    seconds = int(total)
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_size(value: object) -> int:
    """Given `512MiB`, `5GiB`, `10GB` or a number of bytes, return bytes as an int.

    Raise ValueError naming the accepted forms if the value is none of them.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512MiB or 5GiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value!r}")
        return value
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match:
            number, unit = match.groups()
            return int(float(number) * _SIZE_UNITS[(unit or "B").lower()])
    raise ValueError(f"expected a size like 512MiB or 5GiB, got {value!r}")


def format_size(value: int) -> str:
    """Given bytes, return the largest exact binary unit (`5GiB`), else bytes (`1500B`)."""
    for unit in ("TiB", "GiB", "MiB", "KiB"):
        size = _SIZE_UNITS[unit.lower()]
        if value and value % size == 0:
            return f"{value // size}{unit}"
    return f"{value}B"


def format_bytes(value: int | float) -> str:
    """Given bytes, return e.g. `3.2 GiB` (three significant figures at most, trailing zeros dropped)."""
    scaled, unit = float(value), "B"
    for next_unit in ("KiB", "MiB", "GiB", "TiB"):
        if abs(scaled) < 1024:
            break
        scaled, unit = scaled / 1024, next_unit
    if unit == "B":
        return f"{int(scaled)} B"
    digits = 0 if abs(scaled) >= 100 else 1 if abs(scaled) >= 10 else 2
    text = f"{scaled:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").removesuffix(".")
    return f"{text} {unit}"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A daily window in minutes after midnight; `end < start` means it crosses midnight."""

    start_minute: int
    end_minute: int

    def contains(self, minute_of_day: int) -> bool:
        """Given minutes after midnight, return whether they fall inside the window (end excluded)."""
        if self.start_minute < self.end_minute:
            return self.start_minute <= minute_of_day < self.end_minute
        return minute_of_day >= self.start_minute or minute_of_day < self.end_minute

    def __str__(self) -> str:
        return f"{_clock(self.start_minute)}-{_clock(self.end_minute)}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_window(value: object) -> TimeWindow:
    """Given `HH:MM-HH:MM` (24-hour clock, may cross midnight), return a TimeWindow.

    Raise ValueError if the text is malformed or the window is empty.
    """
    if isinstance(value, TimeWindow):
        return value
    if not isinstance(value, str) or value.count("-") != 1:
        raise ValueError(f"expected a window like 22:00-07:00, got {value!r}")
    start_text, end_text = (part.strip() for part in value.split("-"))
    minutes = []
    for text in (start_text, end_text):
        match = _CLOCK.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a 24-hour HH:MM time (00:00 to 23:59) in window {value!r}")
        minutes.append(int(match.group(1)) * 60 + int(match.group(2)))
    if minutes[0] == minutes[1]:
        raise ValueError(f"window {value!r} starts and ends at the same time; omit windows to allow any time")
    return TimeWindow(minutes[0], minutes[1])


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` events per `per_seconds`."""

    count: int
    per_seconds: int

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "hour"}[self.per_seconds]
        return f"{self.count}/{unit}"


def parse_rate(value: object) -> Rate:
    """Given `5/min`, `10/s` or `100/hour`, return a Rate; raise ValueError otherwise."""
    if isinstance(value, Rate):
        return value
    match = _RATE.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"expected a rate like 5/min (per s, min or hour), got {value!r}")
    if int(match.group(1)) < 1:
        raise ValueError(f"a rate must allow at least 1 event, got {value!r}")
    return Rate(int(match.group(1)), _RATE_UNITS[match.group(2)])
