"""Measuring the host for the gate, and lowering an encoder's priority: the psutil side of `gate`.

Everything here is cheap enough to call on the event loop. CPU use is psutil's rolling figure
since the previous call (`interval=None`), never a blocking one-second measurement; memory is
one read of /proc/meminfo; free space is one statvfs of the archive (a local folder).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil

from agent.gate import Sample
from agent.logs import get_logger

# The lowest best-effort I/O priority, for hosts where the idle class is refused.
_BEST_EFFORT_LOWEST = 7


def cpu_count() -> int:
    """Return the number of logical cores (1 if psutil cannot tell)."""
    return int(psutil.cpu_count(logical=True) or 1)


class Sampler:
    """Takes `gate.Sample`s of this host and of the archive's filesystem.

    psutil keeps one "previous CPU times" for the whole process, so another caller of
    `psutil.cpu_percent()` shortens the period the next sample covers; hb2r has no other.
    """

    cpu_count = staticmethod(cpu_count)

    def __init__(self, archive: Path) -> None:
        self._archive = archive
        psutil.cpu_percent(interval=None)  # the first call only sets the starting point

    def sample(self) -> Sample:
        """Return CPU% since the previous call, memory use and the archive's free bytes (0 if it is missing)."""
        memory = psutil.virtual_memory()
        return Sample(
            cpu_percent=float(psutil.cpu_percent(interval=None)),
            memory_percent=float(memory.percent),
            available_memory=int(memory.available),
            archive_free=_free_space(self._archive),
        )


def _free_space(path: Path) -> int:
    # A missing or unreadable archive has no room: the gate then refuses jobs and says why.
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def lower_priority(pid: int, *, nice: int) -> None:
    """Given a process id, set its niceness and the idle I/O class (else best-effort 7).

    A process that has already exited is ignored. Raising niceness is always allowed; lowering it
    below the agent's own needs privileges, and a refusal is logged rather than raised, since the
    encode is then still at least as nice as the agent.
    """
    try:
        process = psutil.Process(pid)
        try:
            process.nice(nice)
        except psutil.AccessDenied:
            get_logger(__name__).warning("nice refused", pid=pid, nice=nice, current=process.nice())
        try:
            process.ionice(psutil.IOPRIO_CLASS_IDLE)
        except psutil.AccessDenied:
            process.ionice(psutil.IOPRIO_CLASS_BE, value=_BEST_EFFORT_LOWEST)
    except psutil.NoSuchProcess:  # also a zombie: it has finished
        return
