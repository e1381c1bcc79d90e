"""Whether the last agent on this state folder stopped cleanly: for "started after a crash".

`hb2r run` writes `<state_dir>/agent.running` (its pid and when it started) once it is up, and
removes it when it has stopped cleanly (SIGTERM, SIGINT). Finding the file at start means the
agent before did not get there: it was killed (SIGKILL, the OOM killer), crashed, or the host
lost power. The file is per state folder, so per agent, like the agent lock (held meanwhile,
so no other agent reads or writes it). Opened without following a link (`agent.store.private`).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from agent.store.db import StateError
from agent.store.private import open_nofollow

MARKER_NAME = "agent.running"
MAX_MARKER_BYTES = 256


def previous_run(state_dir: Path) -> str | None:
    """Return what the marker of an agent that did not stop cleanly says ("pid 12, started ..."), or None."""
    path = state_dir / MARKER_NAME
    try:
        descriptor = open_nofollow(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except (OSError, StateError):
        return "an earlier agent, its marker unreadable"
    try:
        text = os.read(descriptor, MAX_MARKER_BYTES).decode(errors="replace").strip()
    except OSError:
        text = ""
    finally:
        os.close(descriptor)
    return text or "an earlier agent"


def mark_running(state_dir: Path, *, pid: int, started_at: str) -> None:
    """Write the marker: this agent is running (raise OSError or StateError if it cannot be written)."""
    descriptor = open_nofollow(state_dir / MARKER_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.write(descriptor, f"pid {pid}, started {started_at}\n".encode())
    finally:
        os.close(descriptor)


def mark_stopped(state_dir: Path) -> None:
    """Remove the marker: this agent stopped cleanly."""
    with contextlib.suppress(FileNotFoundError):
        (state_dir / MARKER_NAME).unlink()
