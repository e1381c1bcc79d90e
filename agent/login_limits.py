"""How often a client may try to log in, and how guessing at one user name is slowed down.

Why this shape: a limit keyed by the user name alone let anyone lock anyone out (five bad
logins for "Adm" from one address, and the admin's right password from another got 429 for
as long as the guesser kept going). An unauthenticated client must never be able to deny
another client's correct login, so:

- Attempts are counted per (client address, user name), `auth.login_rate_limit` each (e.g.
  5/min), and per client address across all names, ADDRESS_FACTOR times that (20/min): one
  client can neither guess long at one account nor spray many names, nor keep bcrypt busy.
  Attempts past a limit are refused (429, Retry-After) without checking the password; only
  that client is refused. Successes count too: they cost a bcrypt check all the same.
- Per user name, across all addresses, failures are remembered for FAILURE_MEMORY_SECONDS.
  Past `login_rate_limit`'s count of them, the answer to each further failure is held back
  1 s, 2 s, 4 s ... up to MAX_DELAY_SECONDS. This slows a guesser spread over many addresses
  and only ever delays wrong passwords: the right one is answered at once.
- An IPv6 client is counted by its /64 network: one host usually holds a whole /64 and could
  otherwise take a fresh address for every attempt.
- Memory is bounded (MAX_KEYS per table). When a table is full, idle keys are forgotten
  first and keys at their limit last, so a flood of new names or addresses cannot lift a
  limit in force.

Pure: every method takes `now` (monotonic seconds); the HTTP handler reads the clock.
"""

from __future__ import annotations

import ipaddress
import math
from collections import deque
from collections.abc import Iterable

from agent.config.units import Rate

ADDRESS_FACTOR = 4
FAILURE_MEMORY_SECONDS = 15 * 60
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 8.0
IPV6_PREFIX = 64


class RateLimiter:
    """At most `rate.count` attempts per `rate.per_seconds` for each key (a sliding window)."""

    MAX_KEYS = 10_000

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self._attempts: dict[str, deque[float]] = {}

    def attempt(self, keys: Iterable[str], *, now: float) -> float | None:
        """Count one attempt under every key; return seconds to wait if any key is over its limit
        (nothing is counted then), else None."""
        keys = list(keys)
        waits = [wait for key in keys if (wait := self.wait(key, now=now)) is not None]
        if waits:
            return max(waits)
        for key in keys:
            self.count(key, now=now)
        return None

    def wait(self, key: str, *, now: float) -> float | None:
        """Return the seconds (at least 1) until key may try again, or None if it may now."""
        seen = self._attempts.get(key)
        if seen is None:
            return None
        window = self.rate.per_seconds
        while seen and seen[0] <= now - window:
            seen.popleft()
        if len(seen) < self.rate.count:
            return None
        return max(1.0, seen[0] + window - now)

    def count(self, key: str, *, now: float) -> None:
        """Count one attempt under key."""
        if key not in self._attempts and len(self._attempts) >= self.MAX_KEYS:
            self._make_room(now)
        self._attempts.setdefault(key, deque()).append(now)

    def _make_room(self, now: float) -> None:
        """Forget keys until at most 90 % of MAX_KEYS are left: idle keys first, then keys under their
        limit (least recently used first), keys at their limit last."""
        window = self.rate.per_seconds
        for key in list(self._attempts):
            seen = self._attempts[key]
            while seen and seen[0] <= now - window:
                seen.popleft()
            if not seen:
                del self._attempts[key]
        excess = len(self._attempts) - self.MAX_KEYS * 9 // 10
        if excess <= 0:
            return
        ranked = sorted(self._attempts.items(), key=lambda item: (len(item[1]) >= self.rate.count, item[1][-1]))
        for key, _ in ranked[:excess]:
            del self._attempts[key]


class FailureMemory:
    """Recent failed logins per user name, and how long to hold back the answer to the next one."""

    MAX_KEYS = 10_000

    def __init__(self, *, free: int) -> None:
        self.free = free
        # Beyond this many failures the delay is at its cap: older ones need not be kept.
        self._keep = free + 1 + max(0, int(MAX_DELAY_SECONDS / FIRST_DELAY_SECONDS).bit_length())
        self._failures: dict[str, deque[float]] = {}

    def failed(self, name: str, *, now: float) -> float:
        """Remember a failed login for name; return the seconds to hold back its answer (0 for the first few)."""
        key = name.casefold()
        if key not in self._failures and len(self._failures) >= self.MAX_KEYS:
            self._make_room(now)
        seen = self._failures.setdefault(key, deque(maxlen=self._keep))
        self._forget_old(seen, now)
        seen.append(now)
        return delay_after(len(seen), free=self.free)

    def _forget_old(self, seen: deque[float], now: float) -> None:
        while seen and seen[0] <= now - FAILURE_MEMORY_SECONDS:
            seen.popleft()

    def _make_room(self, now: float) -> None:
        for key in list(self._failures):
            self._forget_old(self._failures[key], now)
            if not self._failures[key]:
                del self._failures[key]
        excess = len(self._failures) - self.MAX_KEYS * 9 // 10
        if excess <= 0:
            return
        ranked = sorted(self._failures.items(), key=lambda item: (len(item[1]) >= self.free, item[1][-1]))
        for key, _ in ranked[:excess]:
            del self._failures[key]


def delay_after(failures: int, *, free: int) -> float:
    """Given a name's recent failures (this one included), return the seconds to hold back this answer."""
    if failures <= free:
        return 0.0
    return min(MAX_DELAY_SECONDS, math.ldexp(FIRST_DELAY_SECONDS, min(failures - free - 1, 32)))


class LoginLimits:
    """The login limits of one agent: per address, per (address, name), and the per-name slow-down."""

    def __init__(self, rate: Rate) -> None:
        self.rate = rate
        self.per_address = RateLimiter(Rate(rate.count * ADDRESS_FACTOR, rate.per_seconds))
        self.per_address_and_name = RateLimiter(rate)
        self.failures = FailureMemory(free=rate.count)

    def admit(self, *, address: str, name: str, now: float) -> float | None:
        """Count a login attempt by address for name; return the seconds to wait if it is refused
        (nothing is counted then), else None."""
        client = address_key(address)
        pair = f"{client} {name.casefold()}"
        waits = [
            wait
            for limiter, key in ((self.per_address, client), (self.per_address_and_name, pair))
            if (wait := limiter.wait(key, now=now)) is not None
        ]
        if waits:
            return max(waits)
        self.per_address.count(client, now=now)
        self.per_address_and_name.count(pair, now=now)
        return None

    def failed(self, *, name: str, now: float) -> float:
        """Remember a wrong password (or unknown name) for name; return the seconds to hold back the answer."""
        return self.failures.failed(name, now=now)


def address_key(address: str) -> str:
    """Given a client address, return what it is counted as: itself, or for IPv6 its /64 network."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_PREFIX), strict=False))
    return str(parsed)
