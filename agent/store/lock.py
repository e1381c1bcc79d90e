"""The agent lock: one process at a time owns a state folder.

Two agents on one state_dir would each requeue the other's running jobs as "left by a
crash" and encode the same files twice; `hb2r restore` must not swap the database under
a running agent. So `hb2r run` (for its whole life), `hb2r restore` (for the swap) and
`hb2r store migrate` (for the copy: an agent must not change the state being copied) take
an exclusive, non-blocking `flock` on `<state_dir>/agent.lock` and write their pid and
purpose into it, so whoever is refused can say which process to stop.

`flock` belongs to the open file: the kernel releases it when the holder exits, even on
`kill -9`, so a stale lock file never blocks a restart. The descriptor is not inherited by
child processes (Python opens files close-on-exec), so an orphaned HandBrakeCLI cannot keep
the lock of a dead agent. The file's content is only a hint for messages; the lock is the
truth. The state folder must be the running user's alone, and the lock file is opened without
following a link (see agent.store.private): `hb2r restore` run by root in the agent's folder
is refused, since the agent's user could point `agent.lock` at any file root may write.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from agent.store.db import StateError
from agent.store.private import make_state_dir, open_nofollow

LOCK_NAME = "agent.lock"


@dataclass(frozen=True, slots=True)
class Holder:
    """What the lock file says about the process holding it (either part may be unknown)."""

    pid: int | None
    purpose: str | None


class LockHeld(StateError):
    """Another process holds the state folder's agent lock."""

    def __init__(self, state_dir: Path, holder: Holder) -> None:
        self.state_dir = state_dir
        self.holder = holder
        super().__init__(describe_holder(holder, state_dir))


def lock_path(state_dir: Path) -> Path:
    return state_dir / LOCK_NAME


def describe_holder(holder: Holder, state_dir: Path) -> str:
    """Given what the lock file says, return a sentence naming the process that uses state_dir."""
    pid = f"pid {holder.pid}" if holder.pid is not None else "pid unknown"
    if holder.purpose == "restore":
        return f"hb2r restore ({pid}) is restoring the state database in {state_dir}"
    if holder.purpose == "store migrate":
        return f"hb2r store migrate ({pid}) is copying the state in {state_dir} to PostgreSQL"
    return f"an hb2r agent ({pid}) is running on state_dir {state_dir}"


def parse_holder(text: str) -> Holder:
    """Given the lock file's content ("PID\\nPURPOSE\\n"), return what it says; unknown parts are None."""
    lines = text.splitlines()
    pid: int | None = None
    if lines and lines[0].strip().isdigit():
        pid = int(lines[0].strip())
    purpose = lines[1].strip() if len(lines) > 1 and lines[1].strip() else None
    return Holder(pid=pid, purpose=purpose)


@contextmanager
def agent_lock(state_dir: Path, *, purpose: str) -> Iterator[Path]:
    """Given the state folder, hold its agent lock for the block (making the folder 0700 if needed).

    Yield the lock file's path. Raise LockHeld (naming the holder's pid) if another process
    holds the lock, or StateError if the folder or the lock file cannot be made or opened, or
    if someone else may write the folder, or the lock file is a link.
    """
    make_state_dir(state_dir)
    path = lock_path(state_dir)
    descriptor, writable = _open(path)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockHeld(state_dir, parse_holder(_read(descriptor))) from None
        except OSError as error:
            raise StateError(f"cannot lock {path}: {error.strerror}") from None
        if writable:  # write, then cut: a reader never sees an empty file
            content = f"{os.getpid()}\n{purpose}\n".encode()
            os.pwrite(descriptor, content, 0)
            os.ftruncate(descriptor, len(content))
        yield path
    finally:
        os.close(descriptor)  # releases the lock


def _open(path: Path) -> tuple[int, bool]:
    """Open (creating, 0600) the lock file; return the descriptor and whether it may be written."""
    try:
        return open_nofollow(path, os.O_RDWR | os.O_CREAT), True
    except PermissionError:  # made by another user (root): locking needs only a read descriptor
        try:
            return open_nofollow(path, os.O_RDONLY), False
        except OSError as error:
            raise StateError(f"cannot open {path}: {error.strerror}") from None
    except OSError as error:
        raise StateError(f"cannot open {path}: {error.strerror}") from None


def _read(descriptor: int) -> str:
    try:
        return os.pread(descriptor, 256, 0).decode(errors="replace")
    except OSError:
        return ""
