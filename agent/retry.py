"""How long a failed job waits before its next try: exponential backoff with a ceiling.

Pure, so the queue (`store/jobs.py`) and its tests share one definition of the schedule:
`retry.backoff × 2^(attempt-1)`, never more than `retry.max_backoff`.
"""

from __future__ import annotations

from datetime import timedelta

_MICROSECOND = timedelta(microseconds=1)
# 2**62 µs is far beyond timedelta.max, so capping the exponent here changes no result
# and keeps a huge attempt number from building a huge integer.
_MAX_EXPONENT = 62


def backoff_delay(*, attempt: int, backoff: timedelta, max_backoff: timedelta) -> timedelta:
    """Given the number of failures so far (1 after the first), return the wait before the next try.

    Raise ValueError if attempt is below 1 or a duration is negative.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts failures so far and starts at 1, got {attempt}")
    if backoff < timedelta(0) or max_backoff < timedelta(0):
        raise ValueError(f"backoff durations cannot be negative, got {backoff} and {max_backoff}")
    exponent = min(attempt - 1, _MAX_EXPONENT)
    delay = (backoff // _MICROSECOND) << exponent
    return timedelta(microseconds=min(delay, max_backoff // _MICROSECOND))
