"""Waiting in tests and benchmarks: poll for a condition with a deadline, never sleep a fixed time.

`wait_for` polls a condition from plain code, `wait_for_async` from a coroutine (the condition may
itself be a coroutine function, and `tick` lets a test drive a dispatcher between polls). Both fail
early, with the log, when the agent they wait on (`agent=`, anything with `stopped()` and
`log_tail()`) has exited, and on timeout say what they waited for, with the log or `explain()`.
`within` runs a call that must not block and fails if it does.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Protocol, TypeVar

T = TypeVar("T")

DEADLINE = 120.0


class Watched(Protocol):
    """Something a wait can give up on early: an agent process, a host."""

    def stopped(self) -> str | None:
        """Return why it can no longer bring the condition about (e.g. it exited), or None while it can."""

    def log_tail(self) -> str:
        """Return the end of its log, for the failure message."""


def _context(agent: Watched | None, explain: Callable[[], str] | None) -> str:
    parts = [explain() if explain else "", agent.log_tail() if agent else ""]
    return "\n".join(part for part in parts if part)


def _timed_out(what: str, deadline: float, agent: Watched | None, explain: Callable[[], str] | None) -> AssertionError:
    return AssertionError(f"timed out after {deadline:g} s waiting for {what}\n{_context(agent, explain)}")


def _gave_up(what: str, agent: Watched | None) -> AssertionError | None:
    reason = agent.stopped() if agent else None
    if reason is None or agent is None:
        return None
    return AssertionError(f"{reason} while waiting for {what}:\n{agent.log_tail()}")


def wait_for(
    condition: Callable[[], T | None],
    *,
    what: str,
    deadline: float = DEADLINE,
    interval: float = 0.2,
    agent: Watched | None = None,
    explain: Callable[[], str] | None = None,
) -> T:
    """Return condition()'s first truthy value; raise AssertionError naming `what` if none comes within
    deadline seconds, or at once if agent has stopped."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if failure := _gave_up(what, agent):
            raise failure
        if time.monotonic() > end:
            raise _timed_out(what, deadline, agent, explain)
        time.sleep(interval)


async def wait_for_async(
    condition: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    *,
    what: str,
    deadline: float = DEADLINE,
    interval: float = 0.2,
    agent: Watched | None = None,
    explain: Callable[[], str] | None = None,
    tick: Callable[[], object] | None = None,
) -> T:
    """As wait_for, from a coroutine: condition may be a coroutine function; tick() runs between polls."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if failure := _gave_up(what, agent):
            raise failure
        if time.monotonic() > end:
            raise _timed_out(what, deadline, agent, explain)
        if tick is not None:
            tick()
        await asyncio.sleep(interval)


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
