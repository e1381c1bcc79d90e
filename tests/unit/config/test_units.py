"""The human-friendly values of the config file: durations, sizes, time windows and rates.

Each table row is a value an operator might write; bad values must be refused with a message
that names what is wrong, since it is printed as-is by `hb2r validate`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.config.units import (
    Rate,
    TimeWindow,
    format_duration,
    format_size,
    parse_duration,
    parse_rate,
    parse_size,
    parse_window,
)

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

BAD_DURATION = "expected a duration like 90s, 15m or 1h, got "
HUGE_DURATION = "a duration must be finite and under 999999999 days, got "
BAD_SIZE = "expected a size like 512MiB or 5GiB, got "
BAD_WINDOW = "expected a window like 22:00-07:00, got "
BAD_RATE = "expected a rate like 5/min (per s, min or hour), got "


# --- durations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("90s", timedelta(seconds=90), id="seconds"),
        pytest.param("15m", timedelta(minutes=15), id="minutes"),
        pytest.param("1h", timedelta(hours=1), id="hours"),
        pytest.param("2d", timedelta(days=2), id="days"),
        pytest.param("500ms", timedelta(milliseconds=500), id="milliseconds"),
        pytest.param("1h30m", timedelta(hours=1, minutes=30), id="units-combine"),
        pytest.param("1h 30m", timedelta(hours=1, minutes=30), id="units-may-be-spaced"),
        pytest.param("1.5h", timedelta(minutes=90), id="a-fraction-of-a-unit"),
        pytest.param(90, timedelta(seconds=90), id="a-bare-integer-is-seconds"),
        pytest.param(0.25, timedelta(milliseconds=250), id="a-bare-float-is-seconds"),
        pytest.param("60", timedelta(seconds=60), id="a-number-in-quotes-is-seconds"),
        pytest.param(0, timedelta(0), id="zero"),
        pytest.param(timedelta(minutes=3), timedelta(minutes=3), id="a-timedelta-passes-through"),
    ],
)
def test_parse_duration_accepts(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("soon", BAD_DURATION + "'soon'", id="a-word"),
        pytest.param("", BAD_DURATION + "''", id="empty-text"),
        pytest.param("5 minutes", BAD_DURATION + "'5 minutes'", id="a-spelled-out-unit"),
        pytest.param("10y", BAD_DURATION + "'10y'", id="an-unknown-unit"),
        pytest.param("-5s", BAD_DURATION + "'-5s'", id="negative-text"),
        pytest.param(-5, "a duration cannot be negative, got -5", id="a-negative-number"),
        pytest.param(True, BAD_DURATION + "True", id="a-yes-no-value"),
        pytest.param(None, BAD_DURATION + "None", id="nothing"),
        pytest.param(float("inf"), HUGE_DURATION + "inf", id="infinity"),
        pytest.param(10**20, HUGE_DURATION + "100000000000000000000", id="too-long"),
    ],
)
def test_parse_duration_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(timedelta(0), "0s", id="zero"),
        pytest.param(timedelta(seconds=45), "45s", id="seconds"),
        pytest.param(timedelta(seconds=90), "1m30s", id="minutes-and-seconds"),
        pytest.param(timedelta(hours=1), "1h", id="an-hour"),
        pytest.param(timedelta(hours=1, minutes=30), "1h30m", id="hours-and-minutes"),
        pytest.param(timedelta(days=2), "2d", id="days"),
        pytest.param(timedelta(days=1, seconds=1), "1d1s", id="a-day-and-a-second"),
        pytest.param(timedelta(milliseconds=500), "500ms", id="under-a-second"),
        pytest.param(timedelta(milliseconds=1500), "1500ms", id="a-fraction-of-a-second"),
        pytest.param(timedelta(milliseconds=1001), "1001ms", id="no-millisecond-is-lost"),
    ],
)
def test_format_duration_is_short_and_parses_back(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
    assert parse_duration(text) == value


def test_every_millisecond_count_up_to_ten_seconds_round_trips() -> None:
    durations = [timedelta(milliseconds=ms) for ms in range(10_001)]
    wrong = [value for value in durations if parse_duration(format_duration(value)) != value]
    assert wrong == []


# --- sizes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("512MiB", 512 * MIB, id="mebibytes"),
        pytest.param("5GiB", 5 * GIB, id="gibibytes"),
        pytest.param("2TiB", 2 * TIB, id="tebibytes"),
        pytest.param("64KiB", 64 * KIB, id="kibibytes"),
        pytest.param("10GB", 10 * 1000**3, id="decimal-gigabytes"),
        pytest.param("1.5GiB", 3 * GIB // 2, id="a-fraction"),
        pytest.param("5 gib", 5 * GIB, id="any-case-and-a-space"),
        pytest.param("1500B", 1500, id="bytes-with-unit"),
        pytest.param("1500", 1500, id="bytes-as-text"),
        pytest.param(1500, 1500, id="bytes-as-a-number"),
        pytest.param(0, 0, id="zero"),
    ],
)
def test_parse_size_accepts(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("5 gigs", BAD_SIZE + "'5 gigs'", id="a-made-up-unit"),
        pytest.param("GiB", BAD_SIZE + "'GiB'", id="a-unit-without-a-number"),
        pytest.param("-1GiB", BAD_SIZE + "'-1GiB'", id="negative-text"),
        pytest.param(-1, "a size cannot be negative, got -1", id="a-negative-number"),
        pytest.param(1.5, BAD_SIZE + "1.5", id="a-fraction-of-a-byte"),
        pytest.param(True, BAD_SIZE + "True", id="a-yes-no-value"),
        pytest.param(None, BAD_SIZE + "None", id="nothing"),
    ],
)
def test_parse_size_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_size(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        pytest.param(5 * GIB, "5GiB", id="gibibytes"),
        pytest.param(512 * MIB, "512MiB", id="mebibytes"),
        pytest.param(3 * TIB, "3TiB", id="tebibytes"),
        pytest.param(KIB, "1KiB", id="a-kibibyte"),
        pytest.param(1536 * MIB, "1536MiB", id="the-largest-exact-unit-is-chosen"),
        pytest.param(1500, "1500B", id="not-a-whole-binary-unit-stays-bytes"),
        pytest.param(0, "0B", id="zero"),
    ],
)
def test_format_size_is_exact_and_parses_back(value: int, text: str) -> None:
    assert format_size(value) == text
    assert parse_size(text) == value


# --- time windows -------------------------------------------------------------------------


def _minute(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        pytest.param("09:00-17:30", "09:00", "17:30", id="a-daytime-window"),
        pytest.param("22:00-07:00", "22:00", "07:00", id="a-window-crossing-midnight"),
        pytest.param(" 22:00 - 07:00 ", "22:00", "07:00", id="spaces-are-ignored"),
        pytest.param("00:00-23:59", "00:00", "23:59", id="almost-the-whole-day"),
        pytest.param("23:00-00:00", "23:00", "00:00", id="until-midnight"),
    ],
)
def test_parse_window_accepts(text: str, start: str, end: str) -> None:
    window = parse_window(text)
    assert window == TimeWindow(_minute(start), _minute(end))
    assert str(window) == f"{start}-{end}"
    assert parse_window(str(window)) == window


@pytest.mark.parametrize(
    ("window", "clock", "inside"),
    [
        pytest.param("22:00-07:00", "21:59", False, id="night-window-before-its-start"),
        pytest.param("22:00-07:00", "22:00", True, id="night-window-at-its-start"),
        pytest.param("22:00-07:00", "23:59", True, id="night-window-before-midnight"),
        pytest.param("22:00-07:00", "00:00", True, id="night-window-at-midnight"),
        pytest.param("22:00-07:00", "06:59", True, id="night-window-just-before-its-end"),
        pytest.param("22:00-07:00", "07:00", False, id="night-window-at-its-end-is-outside"),
        pytest.param("22:00-07:00", "12:00", False, id="night-window-at-noon"),
        pytest.param("09:00-17:00", "08:59", False, id="day-window-before-its-start"),
        pytest.param("09:00-17:00", "09:00", True, id="day-window-at-its-start"),
        pytest.param("09:00-17:00", "16:59", True, id="day-window-just-before-its-end"),
        pytest.param("09:00-17:00", "17:00", False, id="day-window-at-its-end-is-outside"),
        pytest.param("09:00-17:00", "23:00", False, id="day-window-at-night"),
        pytest.param("23:00-00:00", "23:30", True, id="window-until-midnight-late-evening"),
        pytest.param("23:00-00:00", "00:00", False, id="window-until-midnight-at-midnight"),
    ],
)
def test_window_contains(window: str, clock: str, inside: bool) -> None:
    assert parse_window(window).contains(_minute(clock)) is inside


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "25:00-01:00",
            "'25:00' is not a 24-hour HH:MM time (00:00 to 23:59) in window '25:00-01:00'",
            id="an-hour-past-23",
        ),
        pytest.param(
            "22:00-24:00",
            "'24:00' is not a 24-hour HH:MM time (00:00 to 23:59) in window '22:00-24:00'",
            id="24-00-is-written-00-00",
        ),
        pytest.param(
            "22:60-23:00",
            "'22:60' is not a 24-hour HH:MM time (00:00 to 23:59) in window '22:60-23:00'",
            id="minute-60",
        ),
        pytest.param(
            "7:00-9:00",
            "'7:00' is not a 24-hour HH:MM time (00:00 to 23:59) in window '7:00-9:00'",
            id="hours-need-two-digits",
        ),
        pytest.param(
            "10pm-6am",
            "'10pm' is not a 24-hour HH:MM time (00:00 to 23:59) in window '10pm-6am'",
            id="a-12-hour-clock",
        ),
        pytest.param("22:00", BAD_WINDOW + "'22:00'", id="only-a-start"),
        pytest.param("22:00-07:00-08:00", BAD_WINDOW + "'22:00-07:00-08:00'", id="three-times"),
        pytest.param(2200, BAD_WINDOW + "2200", id="a-number"),
        pytest.param(
            "10:00-10:00",
            "window '10:00-10:00' starts and ends at the same time; omit windows to allow any time",
            id="an-empty-window",
        ),
    ],
)
def test_parse_window_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_window(value)
    assert str(caught.value) == message


# --- rates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "shown"),
    [
        pytest.param("5/min", Rate(5, 60), "5/min", id="per-minute"),
        pytest.param("10/s", Rate(10, 1), "10/s", id="per-second"),
        pytest.param("100/hour", Rate(100, 3600), "100/hour", id="per-hour"),
        pytest.param("5 / minute", Rate(5, 60), "5/min", id="spelled-out-and-spaced"),
        pytest.param("1/sec", Rate(1, 1), "1/s", id="sec"),
        pytest.param("3/h", Rate(3, 3600), "3/hour", id="h"),
    ],
)
def test_parse_rate_accepts(text: str, expected: Rate, shown: str) -> None:
    rate = parse_rate(text)
    assert rate == expected
    assert str(rate) == shown
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("0/min", "a rate must allow at least 1 event, got '0/min'", id="zero"),
        pytest.param("5/day", BAD_RATE + "'5/day'", id="per-day"),
        pytest.param("five/min", BAD_RATE + "'five/min'", id="a-word"),
        pytest.param("5", BAD_RATE + "'5'", id="no-period"),
        pytest.param(5, BAD_RATE + "5", id="a-number"),
        pytest.param("-1/min", BAD_RATE + "'-1/min'", id="negative"),
    ],
)
def test_parse_rate_refuses(value: object, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_rate(value)
    assert str(caught.value) == message
