"""Measuring the host for the gate: the psutil side of `gate`.

Everything here is cheap enough to call on the event loop. CPU use is psutil's rolling figure
since the previous call (`interval=None`), never a blocking one-second measurement; memory is
one read of /proc/meminfo; free space is one statvfs of the archive (a local folder).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import psutil

from agent.gate import Sample


def cpu_count() -> int:
    """Return the number of logical cores (1 if psutil cannot tell)."""
    return int(psutil.cpu_count(logical=True) or 1)


class Sampler:
    """Takes `gate.Sample`s of this host and of the archive's filesystem.

    psutil keeps one "previous CPU times" for the whole process, so another caller of
    `psutil.cpu_percent()` shortens the period the next sample covers; hb2r has no other.
    """

    cpu_count = staticmethod(cpu_count)

    def __init__(self, archive: Path | Callable[[], Path]) -> None:
        """Given the archive, or a function that returns the archive in force (a reload may move
        it: the agent passes one that reads the current config), measure it at each sample."""
        self._archive = archive if callable(archive) else lambda: archive
        psutil.cpu_percent(interval=None)  # the first call only sets the starting point

    def sample(self) -> Sample:
        """Return CPU% since the previous call, memory use and the archive's free bytes (0 if it is missing)."""
        memory = psutil.virtual_memory()
        return Sample(
            cpu_percent=float(psutil.cpu_percent(interval=None)),
            memory_percent=float(memory.percent),
            available_memory=int(memory.available),
            archive_free=_free_space(self._archive()),
        )


def _free_space(path: Path) -> int:
    # A missing or unreadable archive has no room: the gate then refuses jobs and says why.
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0
