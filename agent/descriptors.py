"""File descriptors: the process's limit, what the HTTP service may use of it, and what to do
when none are left.

Every accepted connection, SQLite file, scanned folder, fingerprinted file and encode pipe
holds a descriptor. With a low limit (a unit without `LimitNOFILE=`, or a host default of
1024 or less) a crowd of idle clients could take them all; then accepting, SQLite, the
host sample and the scan all fail at once, and a scan that cannot open a folder used to
look like an unreadable library. So:

- at start the soft limit is raised to the hard one (`raise_soft_limit`), the most an
  unprivileged process may have; the unit sets `LimitNOFILE=` too;
- the HTTP service accepts at most `connection_cap(limit)` connections at once, leaving
  FD_RESERVE descriptors for the database, encodes and scans, and ACCEPT_BACKLOG for the
  connections asyncio accepts in one go before they are counted (agent/api/listener.py);
- running out (EMFILE: this process, ENFILE: the whole host) is a condition of the agent,
  never of a library: the scan raises OutOfDescriptors, the pass fails and the next one
  retries; and it is logged once a minute with a count (`OncePerInterval`), not once per
  event — one line per failed accept would fill the disk.
"""

from __future__ import annotations

import errno
import resource
import time
from collections.abc import Callable
from typing import Any

FD_RESERVE = 48
ACCEPT_BACKLOG = 16
MAX_CONNECTIONS = 256
MIN_CONNECTIONS = 4
REPORT_INTERVAL_SECONDS = 60.0
SHORTAGE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})


class OutOfDescriptors(Exception):
    """The process (EMFILE) or the host (ENFILE) has no file descriptor left: a pass that meets
    it fails as a whole and is retried; it says nothing about the folder it was reading."""


def is_shortage(error: BaseException) -> bool:
    """Return True if error is an OSError for want of file descriptors (EMFILE or ENFILE)."""
    return isinstance(error, OSError) and error.errno in SHORTAGE_ERRNOS


def raise_soft_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return (soft, hard) in force after.

    An unlimited hard limit is left alone (the soft one is then raised to no more than
    MAX_CONNECTIONS * 64, far more than the agent ever needs). Never raises: a limit that
    cannot be changed is kept.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, MAX_CONNECTIONS * 64)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, hard
        return target, hard
    return soft, hard


def connection_cap(soft_limit: int) -> int:
    """Given the soft RLIMIT_NOFILE, return how many HTTP connections may be open at once."""
    if soft_limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(MIN_CONNECTIONS, min(MAX_CONNECTIONS, soft_limit - FD_RESERVE - ACCEPT_BACKLOG))


class OncePerInterval:
    """Log an event at most once per interval, saying how often it happened meanwhile."""

    def __init__(
        self, log: Any, *, interval: float = REPORT_INTERVAL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.log = log
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._unreported: dict[str, int] = {}

    def report(self, event: str, **fields: Any) -> None:
        """Log event (a warning) now if it was not logged in the last interval; else count it."""
        now = self.clock()
        last = self._last.get(event)
        if last is not None and now - last < self.interval:
            self._unreported[event] = self._unreported.get(event, 0) + 1
            return
        self._last[event] = now
        times = self._unreported.pop(event, 0) + 1
        self.log.warning(event, occurrences=times, **fields)
