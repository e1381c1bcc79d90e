"""The retry schedule: how long a failed job waits before its next try."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agent.retry import backoff_delay

SECONDS_30 = timedelta(seconds=30)
HOUR = timedelta(hours=1)


@pytest.mark.parametrize(
    "attempt, expected",
    [
        pytest.param(1, timedelta(seconds=30), id="after-the-first-failure-it-waits-the-backoff"),
        pytest.param(2, timedelta(seconds=60), id="after-the-second-it-waits-twice-as-long"),
        pytest.param(3, timedelta(seconds=120), id="after-the-third-four-times"),
        pytest.param(4, timedelta(seconds=240), id="after-the-fourth-eight-times"),
        pytest.param(7, timedelta(seconds=1920), id="after-the-seventh-32-minutes"),
        pytest.param(8, HOUR, id="after-the-eighth-it-is-capped-at-the-maximum"),
        pytest.param(20, HOUR, id="later-failures-stay-at-the-maximum"),
        pytest.param(10_000, HOUR, id="a-huge-attempt-count-neither-overflows-nor-grows"),
    ],
)
def test_the_wait_doubles_each_failure_up_to_the_maximum(attempt: int, expected: timedelta) -> None:
    assert backoff_delay(attempt=attempt, backoff=SECONDS_30, max_backoff=HOUR) == expected


@pytest.mark.parametrize(
    "backoff, max_backoff, attempt, expected",
    [
        pytest.param(
            timedelta(minutes=5), timedelta(minutes=1), 1, timedelta(minutes=1), id="a-maximum-below-the-backoff-wins"
        ),
        pytest.param(timedelta(0), HOUR, 5, timedelta(0), id="a-zero-backoff-retries-at-once"),
        pytest.param(
            timedelta(milliseconds=1500), HOUR, 2, timedelta(seconds=3), id="fractions-of-a-second-double-exactly"
        ),
        pytest.param(
            timedelta(days=1), timedelta(days=999_999_999), 60, timedelta(days=999_999_999),
            id="the-largest-maximum-caps-without-overflow",
        ),
    ],
)
def test_unusual_settings_give_sensible_waits(
    backoff: timedelta, max_backoff: timedelta, attempt: int, expected: timedelta
) -> None:
    assert backoff_delay(attempt=attempt, backoff=backoff, max_backoff=max_backoff) == expected


@pytest.mark.parametrize(
    "attempt, backoff",
    [
        pytest.param(0, SECONDS_30, id="attempt-zero-is-refused-it-counts-failures-from-one"),
        pytest.param(-1, SECONDS_30, id="a-negative-attempt-is-refused"),
        pytest.param(1, timedelta(seconds=-1), id="a-negative-backoff-is-refused"),
    ],
)
def test_meaningless_arguments_are_refused(attempt: int, backoff: timedelta) -> None:
    with pytest.raises(ValueError, match=r"attempt|negative"):
        backoff_delay(attempt=attempt, backoff=backoff, max_backoff=HOUR)
