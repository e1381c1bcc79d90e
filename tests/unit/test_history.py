"""Which day a moment belongs to (the agent host's local calendar day) and the days a window holds."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from agent.history import first_day, local_day

BERLIN_SUMMER = timezone(timedelta(hours=2))
NEW_YORK_WINTER = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("moment", "zone", "day"),
    [
        pytest.param(datetime(2024, 5, 1, 23, 30, tzinfo=UTC), BERLIN_SUMMER, date(2024, 5, 2), id="past-midnight"),
        pytest.param(datetime(2024, 5, 1, 21, 59, tzinfo=UTC), BERLIN_SUMMER, date(2024, 5, 1), id="before-midnight"),
        pytest.param(datetime(2024, 1, 2, 3, 0, tzinfo=UTC), NEW_YORK_WINTER, date(2024, 1, 1), id="west-a-day-back"),
        pytest.param(datetime(2024, 1, 2, 3, 0, tzinfo=UTC), UTC, date(2024, 1, 2), id="utc-host"),
    ],
)
def test_a_moment_counts_for_the_local_calendar_day(moment: datetime, zone: timezone, day: date) -> None:
    assert local_day(moment, zone) == day


def test_a_naive_moment_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        local_day(datetime(2024, 5, 1, 12, 0))  # noqa: DTZ001 - the mistake under test


@pytest.mark.parametrize(("days", "first"), [(1, date(2024, 3, 1)), (30, date(2024, 2, 1)), (366, date(2023, 3, 2))])
def test_a_window_of_days_ends_today_leap_days_included(days: int, first: date) -> None:
    assert first_day(date(2024, 3, 1), days) == first
