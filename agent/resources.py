"""Measuring the host for the gate: the psutil side of `gate`.

Everything here is cheap enough to call on the event loop. CPU use is psutil's rolling figure
since the previous call (`interval=None`), never a blocking one-second measurement; memory is
one read of /proc/meminfo; free space is one statvfs of the archive (a local folder).

In a container (or any cgroup with a CPU quota or memory limit) the figures are the cgroup's
share instead (agent/cgroup.py): the cores are the quota rounded up, CPU use is the cgroup's CPU
time as a percent of its quota, memory use is against its limit. Without a quota or limit (a bare
host, the systemd unit) nothing changes. The cgroup's few small files are read at each sample, so
a changed limit (`docker update --cpus`) counts from the next one.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from agent import cgroup
from agent.gate import Sample

PROC_CGROUP = "/proc/self/cgroup"
MOUNTINFO = "/proc/self/mountinfo"


def read_file(path: str) -> str | None:
    """Return a (small, /proc or /sys) file's text, or None if it cannot be read."""
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError):
        return None


def cgroup_limits() -> cgroup.Limits:
    """Return this process's cgroup CPU quota and memory limit (none of either on a bare host)."""
    return cgroup.read_limits(proc_cgroup=_text(PROC_CGROUP), mountinfo=_text(MOUNTINFO), read=read_file)


def cgroup_usage() -> cgroup.Usage:
    """Return this process's cgroup CPU time and memory use."""
    return cgroup.read_usage(proc_cgroup=_text(PROC_CGROUP), mountinfo=_text(MOUNTINFO), read=read_file)


def _text(path: str) -> str:
    return read_file(path) or ""


def host_cpu_count() -> int:
    """Return the logical cores this process may run on (its CPU affinity: a container's --cpuset-cpus)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except OSError:
        return int(psutil.cpu_count(logical=True) or 1)


def cpu_count() -> int:
    """Return the logical cores the gate counts on: this process's, cut to its cgroup's CPU quota (--cpus)."""
    return cgroup.effective_cpu_count(host_cpu_count(), cgroup_limits())


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
        self._cgroup_cpu = (time.monotonic(), cgroup_usage().cpu_seconds)  # the same for the cgroup's CPU time

    def sample(self) -> Sample:
        """Return CPU% since the previous call, memory use and the archive's free bytes (0 if it is missing);
        of the cgroup's quota and limit where it has them."""
        memory = psutil.virtual_memory()
        cpu_percent = float(psutil.cpu_percent(interval=None))
        memory_percent, available = float(memory.percent), int(memory.available)
        limits = cgroup_limits()
        if limits.cpus is not None or limits.memory is not None:
            usage = cgroup_usage()
            now, (then, used_before) = time.monotonic(), self._cgroup_cpu
            self._cgroup_cpu = (now, usage.cpu_seconds)
            if limits.cpus is not None and usage.cpu_seconds is not None and used_before is not None:
                cpu_percent = cgroup.cpu_percent(
                    used_seconds=usage.cpu_seconds - used_before,
                    elapsed_seconds=now - then,
                    cpus=min(limits.cpus, host_cpu_count()),
                )
            if limits.memory is not None and usage.memory is not None:
                memory_percent = min(100.0, usage.memory / limits.memory * 100)
                available = max(0, min(available, limits.memory - usage.memory))
        return Sample(
            cpu_percent=cpu_percent,
            memory_percent=memory_percent,
            available_memory=available,
            archive_free=_free_space(self._archive()),
        )


def _free_space(path: Path) -> int:
    # A missing or unreadable archive has no room: the gate then refuses jobs and says why.
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0
