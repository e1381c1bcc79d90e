"""Password checks off the event loop: bcrypt in a small executor of its own, at nice 10.

bcrypt is slow on purpose, so a storm of logins must not take the loop's core: LOGIN_THREADS
threads run it, niced, and at most MAX_PENDING_LOGINS wait (the rest are told to come back
later). An unknown user is checked against a dummy hash of the same cost: the answer and the
time are those of a wrong password.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor

import bcrypt

from agent.domain import UserRecord
from agent.passwords import check_password

LOGIN_THREADS = max(1, (os.cpu_count() or 2) // 2)
MAX_PENDING_LOGINS = 64
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class LoginBusy(Exception):
    """Too many logins are waiting for bcrypt already."""


class PasswordChecker:
    """Runs bcrypt off the event loop, in a small executor of its own."""

    def __init__(self, *, threads: int = LOGIN_THREADS) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="bcrypt", initializer=_lower_thread_priority
        )
        self._pending = 0

    async def check(self, password: str, user: UserRecord | None, *, cost: int) -> bool:
        """Return whether password is user's; for None (an unknown user), check a dummy hash of
        bcrypt cost `cost` and return False, so that both take the same time.

        Raise LoginBusy if MAX_PENDING_LOGINS checks are waiting already.
        """
        if self._pending >= MAX_PENDING_LOGINS:
            raise LoginBusy("too many logins at once")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            target = _dummy_hash(cost) if user is None else user.password_hash
            matches = await loop.run_in_executor(self._executor, check_password, password, target)
        finally:
            self._pending -= 1
        return matches and user is not None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


BCRYPT_NICE = 10


def _lower_thread_priority() -> None:
    """Make the calling (bcrypt) thread nicer than the event loop's: a login storm then takes
    what the loop leaves over. Linux keeps niceness per thread, addressed by its thread id."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICE)


def bcrypt_cost(password_hash: str, *, default: int) -> int:
    """Return the cost of a `$2b$12$...` hash (default if it does not say)."""
    field = password_hash[4:6]
    return int(field) if field.isdigit() else default


def _dummy_hash(cost: int) -> str:
    """Return a hash no password matches whose check costs what a real hash of this cost does.

    Only the salt part must be well formed, so nothing is hashed here: the first unknown name
    must not take twice as long as the next ones (or as a wrong password).
    """
    salt = bcrypt.gensalt(rounds=min(max(cost, 4), 31)).decode("ascii")
    return salt + "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))
