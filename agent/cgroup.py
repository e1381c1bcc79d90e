"""The container's share of the machine: its cgroup's CPU quota, memory limit and use (v2 and v1).

In a container (`docker run --cpus 1 --memory 1g`, compose's `cpus:`/`mem_limit:`) psutil still
sees the host: every core in `cpu_count`, the host's memory in `virtual_memory`, the host's CPU
time in `cpu_percent`. The gate must see the container's share instead, or `max_jobs: auto` starts
one encode per 1.8 of the HOST's cores inside a one-CPU container, and `memory_percent` compares
against memory the kernel will never let it use (it OOM-kills at the cgroup's limit first). So the
agent reads its own cgroup, the same way on a bare host (the systemd unit's cgroup, normally with
no quota) and in a container:

* which cgroup: `/proc/self/cgroup` gives the process's path per hierarchy, `/proc/self/mountinfo`
  where each hierarchy is mounted and which part of it (a container sees only its own subtree, at
  the mount point); every level from the process's own cgroup up to the mount's root is read, and
  the tightest limit wins (a parent's limit binds its children);
* cgroup v2 (`cgroup2`): `cpu.max` ("max 100000" or "QUOTA PERIOD" µs), `memory.max` ("max" or
  bytes), use from `cpu.stat` `usage_usec` and `memory.current` less `inactive_file`;
* cgroup v1: `cpu.cfs_quota_us` (-1: none) / `cpu.cfs_period_us`, `memory.limit_in_bytes` (v1's
  "unlimited" is a huge page-rounded number: anything from 2**62 up means none), use from
  `cpuacct.usage` (ns) and `memory.usage_in_bytes` less `total_inactive_file`; hybrid hosts have
  both, and whichever holds a limit counts.

Parsing is pure (text in, numbers out) so it is tested with tables of file contents; `read_limits`
and `read_usage` take a `read` function (path -> text, or None when missing), which
`resources.read_file` implements on the real files.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

# cgroup v1 writes "no limit" as PAGE_COUNTER_MAX pages (9223372036854771712 on x86-64): any limit this big is none.
UNLIMITED_V1 = 2**62

Read = Callable[[str], "str | None"]


@dataclass(frozen=True)
class Limits:
    """The cgroup's CPU quota in cores (e.g. 1.5) and memory limit in bytes; None where there is none."""

    cpus: float | None = None
    memory: int | None = None


@dataclass(frozen=True)
class Usage:
    """The cgroup's CPU time so far (seconds, all its processes) and memory in use (bytes, page cache it can
    drop not counted); None where the cgroup does not say."""

    cpu_seconds: float | None = None
    memory: int | None = None


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: where it is mounted, and the directories of this process's cgroup in it,
    innermost first, up to the mount's root."""

    version: int
    controllers: frozenset[str]
    directories: tuple[str, ...]


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Given /proc/self/cgroup, return {hierarchy key: path}: the key is the v1 controller list as written
    (e.g. "cpu,cpuacct", or "name=systemd"), and "" for the v2 hierarchy ("0::/path")."""
    paths: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2].strip()
    return paths


def hierarchies(proc_cgroup: str, mountinfo: str) -> list[Hierarchy]:
    """Given /proc/self/cgroup and /proc/self/mountinfo, return the mounted hierarchies this process is in."""
    paths = parse_proc_cgroup(proc_cgroup)
    found: list[Hierarchy] = []
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        after = line.split(" - ", 1)[1].split()
        if len(after) < 3:
            continue
        fstype, super_options = after[0], after[2]
        root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        if fstype == "cgroup2":
            path = paths.get("")
            controllers: frozenset[str] = frozenset()
            version = 2
        elif fstype == "cgroup":
            controllers = frozenset(option for option in super_options.split(",") if option not in ("rw", "ro"))
            path = next((p for key, p in paths.items() if key and frozenset(key.split(",")) <= controllers), None)
            version = 1
        else:
            continue
        if path is None:
            continue
        found.append(
            Hierarchy(version=version, controllers=controllers, directories=_directories(path, root, mount_point))
        )
    return found


def _directories(path: str, root: str, mount_point: str) -> tuple[str, ...]:
    """The process's cgroup directory under mount_point and its parents up to mount_point, innermost first.

    The mount shows the hierarchy from `root` down; a path outside it (as a cgroup namespace can show, "/../x")
    means the process sits at the mount point itself as far as this mount can tell."""
    root = root.rstrip("/")
    if path.startswith("/..") or not (path == root or path.startswith(root + "/") or root == ""):
        return (mount_point,)
    relative = [part for part in path[len(root) :].split("/") if part]
    mount_point = mount_point.rstrip("/") or "/"
    return tuple(os.path.join(mount_point, *relative[:depth]) for depth in range(len(relative), -1, -1))


def cpu_quota_v2(cpu_max: str) -> float | None:
    """Given cgroup v2's cpu.max ("max 100000", "50000 100000"), return the quota in cores, or None."""
    parts = cpu_max.split()
    if not parts or parts[0] == "max":
        return None
    period = int(parts[1]) if len(parts) > 1 else 100_000
    return _cores(int(parts[0]), period)


def cpu_quota_v1(quota_us: str, period_us: str) -> float | None:
    """Given cgroup v1's cpu.cfs_quota_us ("-1": none) and cpu.cfs_period_us, return the quota in cores, or None."""
    return _cores(int(quota_us.strip()), int(period_us.strip()))


def _cores(quota: int, period: int) -> float | None:
    if quota <= 0 or period <= 0:
        return None
    return quota / period


def memory_limit_v2(memory_max: str) -> int | None:
    """Given cgroup v2's memory.max ("max" or bytes), return the limit in bytes, or None."""
    text = memory_max.strip()
    return None if text in ("", "max") else _memory(int(text))


def memory_limit_v1(limit_in_bytes: str) -> int | None:
    """Given cgroup v1's memory.limit_in_bytes, return the limit in bytes, or None (v1 says none with a huge number)."""
    text = limit_in_bytes.strip()
    return None if text in ("", "-1", "max") else _memory(int(text))


def _memory(value: int) -> int | None:
    return None if value <= 0 or value >= UNLIMITED_V1 else value


def stat_value(stat: str, key: str) -> int | None:
    """Given a "key value" file (cpu.stat, memory.stat), return key's value, or None."""
    for line in stat.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None


def read_limits(*, proc_cgroup: str, mountinfo: str, read: Read) -> Limits:
    """Given /proc/self/cgroup, /proc/self/mountinfo and a reader of files, return the tightest CPU quota and
    memory limit over every level of this process's cgroup, in every hierarchy (None where there is none)."""
    cpus: list[float] = []
    memory: list[int] = []
    for hierarchy in hierarchies(proc_cgroup, mountinfo):
        for directory in hierarchy.directories:
            if hierarchy.version == 2:
                if (text := read(f"{directory}/cpu.max")) and (quota := cpu_quota_v2(text)) is not None:
                    cpus.append(quota)
                if (text := read(f"{directory}/memory.max")) and (limit := memory_limit_v2(text)) is not None:
                    memory.append(limit)
                continue
            if "cpu" in hierarchy.controllers:
                quota_us, period_us = read(f"{directory}/cpu.cfs_quota_us"), read(f"{directory}/cpu.cfs_period_us")
                if quota_us and period_us and (quota := cpu_quota_v1(quota_us, period_us)) is not None:
                    cpus.append(quota)
            if "memory" in hierarchy.controllers:
                text = read(f"{directory}/memory.limit_in_bytes")
                if text and (limit := memory_limit_v1(text)) is not None:
                    memory.append(limit)
    return Limits(cpus=min(cpus, default=None), memory=min(memory, default=None))


def read_usage(*, proc_cgroup: str, mountinfo: str, read: Read) -> Usage:
    """Given the same as `read_limits`, return the CPU time and memory use of this process's own cgroup (the
    innermost level, which holds the agent and its encoders), from whichever hierarchy reports it."""
    cpu_seconds: float | None = None
    memory: int | None = None
    for hierarchy in hierarchies(proc_cgroup, mountinfo):
        own = hierarchy.directories[0]
        if hierarchy.version == 2:
            if cpu_seconds is None and (text := read(f"{own}/cpu.stat")):
                usage = stat_value(text, "usage_usec")
                cpu_seconds = None if usage is None else usage / 1e6
            if memory is None and (text := read(f"{own}/memory.current")):
                inactive = stat_value(read(f"{own}/memory.stat") or "", "inactive_file") or 0
                memory = max(0, int(text) - inactive)
            continue
        if "cpuacct" in hierarchy.controllers and cpu_seconds is None and (text := read(f"{own}/cpuacct.usage")):
            cpu_seconds = int(text) / 1e9
        if "memory" in hierarchy.controllers and memory is None and (text := read(f"{own}/memory.usage_in_bytes")):
            inactive = stat_value(read(f"{own}/memory.stat") or "", "total_inactive_file") or 0
            memory = max(0, int(text) - inactive)
    return Usage(cpu_seconds=cpu_seconds, memory=memory)


def effective_cpu_count(host_cores: int, limits: Limits) -> int:
    """Given the host's logical cores and the cgroup's limits, return the cores the gate may count on: the
    quota rounded up (1.5 CPUs can run two threads at once), never more than the host has, at least 1."""
    if limits.cpus is None:
        return max(1, host_cores)
    return max(1, min(host_cores, math.ceil(limits.cpus - 1e-9)))


def cpu_percent(*, used_seconds: float, elapsed_seconds: float, cpus: float) -> float:
    """Given CPU seconds the cgroup used over elapsed wall seconds and its quota in cores, return its use as a
    percent of its quota (0-100): 100 means the container is using all the CPU it may."""
    if elapsed_seconds <= 0 or cpus <= 0:
        return 0.0
    return max(0.0, min(100.0, used_seconds / (elapsed_seconds * cpus) * 100))


def _unescape(text: str) -> str:
    # mountinfo writes space, tab, newline and backslash in paths as octal escapes.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        text = text.replace(escaped, plain)
    return text
