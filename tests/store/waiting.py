"""Waiting in the store tests: for a condition to come true, or for a call that must not block."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], *, seconds: float = 5.0) -> T:
    """Return probe()'s first truthy result; fail if none comes within seconds."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found or time.monotonic() > deadline:
            assert found, f"nothing within {seconds} s"
            return found
        time.sleep(0.01)


def within(seconds: float, call: Callable[[], T]) -> T:
    """Return call()'s result, failing if it does not return within seconds (it would block a host)."""
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(call)
    try:
        return future.result(timeout=seconds)
    except FutureTimeout:
        raise AssertionError(f"still blocked after {seconds} s") from None
    finally:
        pool.shutdown(wait=False)  # a blocked call ends when the test lets go of the lock
