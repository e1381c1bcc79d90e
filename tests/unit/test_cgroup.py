"""The cgroup's CPU quota, memory limit and use, from the text of its files (agent/cgroup.py)."""

from __future__ import annotations

import pytest

from agent import cgroup

V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw,nsdelegate\n"
# A hybrid host (v1 controllers, v2 beside them) as a container without a cgroup namespace sees it: each
# hierarchy's mount shows only the container's own cgroup, whose full path /proc/self/cgroup still gives.
V1_CONTAINER = "libpod_parent/libpod-abc"
V1_MOUNTS = (
    f"40 35 0:30 /{V1_CONTAINER} /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
    f"41 35 0:31 /{V1_CONTAINER} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n"
    f"42 35 0:32 /{V1_CONTAINER} /sys/fs/cgroup/systemd ro,nosuid - cgroup cgroup rw,xattr,name=systemd\n"
    "43 35 0:33 / /sys/fs/cgroup/unified ro,nosuid - cgroup2 cgroup2 rw\n"
    "44 35 0:34 / /proc rw - proc proc rw\n"
)
V1_PROC = f"4:memory:/{V1_CONTAINER}\n2:cpu,cpuacct:/{V1_CONTAINER}\n1:name=systemd:/{V1_CONTAINER}\n0::/\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max 100000\n", None),
        ("100000 100000\n", 1.0),
        ("150000 100000\n", 1.5),
        ("50000 100000\n", 0.5),
        ("200000 50000\n", 4.0),
        ("max\n", None),
    ],
)
def test_cpu_max_v2_gives_the_quota_in_cores(text: str, expected: float | None) -> None:
    assert cgroup.cpu_quota_v2(text) == expected


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [("-1\n", "100000\n", None), ("100000\n", "100000\n", 1.0), ("250000\n", "100000\n", 2.5), ("0", "100000", None)],
)
def test_cfs_quota_v1_gives_the_quota_in_cores(quota: str, period: str, expected: float | None) -> None:
    assert cgroup.cpu_quota_v1(quota, period) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("max\n", None), ("1073741824\n", 1073741824), ("536870912", 536870912)],
)
def test_memory_max_v2_gives_the_limit(text: str, expected: int | None) -> None:
    assert cgroup.memory_limit_v2(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9223372036854771712\n", None),  # v1's "unlimited": PAGE_COUNTER_MAX pages
        ("9223372036854775807\n", None),
        ("1073741824\n", 1073741824),
        ("-1\n", None),
    ],
)
def test_memory_limit_in_bytes_v1_gives_the_limit(text: str, expected: int | None) -> None:
    assert cgroup.memory_limit_v1(text) == expected


@pytest.mark.parametrize(
    ("proc_cgroup", "mountinfo", "files", "expected"),
    [
        pytest.param(  # a bare host: the agent's systemd unit, no quota, no limit
            "0::/system.slice/hb2r.service\n",
            V2_MOUNT,
            {
                "/sys/fs/cgroup/system.slice/hb2r.service/cpu.max": "max 100000\n",
                "/sys/fs/cgroup/system.slice/hb2r.service/memory.max": "max\n",
                "/sys/fs/cgroup/system.slice/cpu.max": "max 100000\n",
            },
            cgroup.Limits(),
            id="v2-host-unlimited",
        ),
        pytest.param(  # a v2 container with its own cgroup namespace: it sits at the mount's root
            "0::/\n",
            V2_MOUNT,
            {"/sys/fs/cgroup/cpu.max": "100000 100000\n", "/sys/fs/cgroup/memory.max": "1073741824\n"},
            cgroup.Limits(cpus=1.0, memory=1073741824),
            id="v2-container-namespace",
        ),
        pytest.param(  # nested: the limits are on a parent (a pod, a slice); the tightest level wins
            "0::/kubepods/pod1/agent\n",
            V2_MOUNT,
            {
                "/sys/fs/cgroup/kubepods/pod1/agent/cpu.max": "max 100000\n",
                "/sys/fs/cgroup/kubepods/pod1/agent/memory.max": "2147483648\n",
                "/sys/fs/cgroup/kubepods/pod1/cpu.max": "150000 100000\n",
                "/sys/fs/cgroup/kubepods/pod1/memory.max": "max\n",
                "/sys/fs/cgroup/kubepods/cpu.max": "400000 100000\n",
                "/sys/fs/cgroup/kubepods/memory.max": "1073741824\n",
            },
            cgroup.Limits(cpus=1.5, memory=1073741824),
            id="v2-nested-parent-limits",
        ),
        pytest.param(  # a cgroup namespace can show a path outside the mount: only the mount point is readable
            "0::/../../other\n",
            V2_MOUNT,
            {"/sys/fs/cgroup/cpu.max": "50000 100000\n", "/sys/fs/cgroup/memory.max": "max\n"},
            cgroup.Limits(cpus=0.5),
            id="v2-path-outside-the-mount",
        ),
        pytest.param(  # v1 container (podman/docker with runc on a hybrid host): the mount shows its own cgroup
            V1_PROC,
            V1_MOUNTS,
            {
                "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "100000\n",
                "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes": "1073741824\n",
            },
            cgroup.Limits(cpus=1.0, memory=1073741824),
            id="v1-container",
        ),
        pytest.param(  # v1 without limits: quota -1, memory PAGE_COUNTER_MAX
            V1_PROC,
            V1_MOUNTS,
            {
                "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            },
            cgroup.Limits(),
            id="v1-unlimited",
        ),
        pytest.param(  # v1 on a host: nested path under the mount's root, limit on the parent
            "3:cpu,cpuacct:/system.slice/hb2r.service\n2:memory:/system.slice/hb2r.service\n",
            "40 35 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
            "41 35 0:31 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
            {
                "/sys/fs/cgroup/cpu,cpuacct/system.slice/hb2r.service/cpu.cfs_quota_us": "-1\n",
                "/sys/fs/cgroup/cpu,cpuacct/system.slice/hb2r.service/cpu.cfs_period_us": "100000\n",
                "/sys/fs/cgroup/cpu,cpuacct/system.slice/cpu.cfs_quota_us": "300000\n",
                "/sys/fs/cgroup/cpu,cpuacct/system.slice/cpu.cfs_period_us": "100000\n",
                "/sys/fs/cgroup/memory/system.slice/hb2r.service/memory.limit_in_bytes": "4294967296\n",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n",
            },
            cgroup.Limits(cpus=3.0, memory=4294967296),
            id="v1-host-nested",
        ),
        pytest.param(  # no cgroup filesystem mounted at all (a chroot, an odd sandbox): no limits, no error
            "0::/\n", "44 35 0:34 / /proc rw - proc proc rw\n", {}, cgroup.Limits(), id="nothing-mounted"
        ),
    ],
)
def test_the_tightest_limit_of_the_process_cgroup_counts(
    proc_cgroup: str, mountinfo: str, files: dict[str, str], expected: cgroup.Limits
) -> None:
    assert cgroup.read_limits(proc_cgroup=proc_cgroup, mountinfo=mountinfo, read=files.get) == expected


@pytest.mark.parametrize(
    ("proc_cgroup", "mountinfo", "files", "expected"),
    [
        pytest.param(
            "0::/\n",
            V2_MOUNT,
            {
                "/sys/fs/cgroup/cpu.stat": "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
                "/sys/fs/cgroup/memory.current": "300000000\n",
                "/sys/fs/cgroup/memory.stat": "anon 100000000\nfile 200000000\ninactive_file 100000000\n",
            },
            cgroup.Usage(cpu_seconds=2.5, memory=200000000),
            id="v2",
        ),
        pytest.param(
            V1_PROC,
            V1_MOUNTS,
            {
                "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage": "1500000000\n",
                "/sys/fs/cgroup/memory/memory.usage_in_bytes": "300000000\n",
                "/sys/fs/cgroup/memory/memory.stat": "cache 1\ninactive_file 5\ntotal_inactive_file 50000000\n",
            },
            cgroup.Usage(cpu_seconds=1.5, memory=250000000),
            id="v1",
        ),
        pytest.param("0::/\n", V2_MOUNT, {}, cgroup.Usage(), id="unreadable"),
    ],
)
def test_usage_is_the_process_cgroup_cpu_time_and_memory_less_page_cache(
    proc_cgroup: str, mountinfo: str, files: dict[str, str], expected: cgroup.Usage
) -> None:
    assert cgroup.read_usage(proc_cgroup=proc_cgroup, mountinfo=mountinfo, read=files.get) == expected


@pytest.mark.parametrize(
    ("host_cores", "limits", "expected"),
    [
        (8, cgroup.Limits(), 8),
        (8, cgroup.Limits(cpus=1.0), 1),
        (8, cgroup.Limits(cpus=1.5), 2),
        (8, cgroup.Limits(cpus=0.5), 1),
        (2, cgroup.Limits(cpus=4.0), 2),  # a quota above the host's cores gives no more cores
    ],
)
def test_cores_the_gate_counts_follow_the_quota(host_cores: int, limits: cgroup.Limits, expected: int) -> None:
    assert cgroup.effective_cpu_count(host_cores, limits) == expected


@pytest.mark.parametrize(
    ("used", "elapsed", "cpus", "expected"),
    [(1.0, 2.0, 1.0, 50.0), (1.0, 1.0, 2.0, 50.0), (3.0, 1.0, 1.0, 100.0), (0.0, 1.0, 1.0, 0.0), (1.0, 0.0, 1.0, 0.0)],
)
def test_cpu_percent_is_of_the_quota(used: float, elapsed: float, cpus: float, expected: float) -> None:
    assert cgroup.cpu_percent(used_seconds=used, elapsed_seconds=elapsed, cpus=cpus) == expected
