"""Decision table: does a library get inotify events, or must it be polled? (agent.mounts)

The mount table is given as the text of /proc/self/mountinfo, as the kernel writes it (mount
points with spaces, tabs, newlines and backslashes escaped as octal `\\040`, `\\011`, `\\012`, `\\134`).
"""

from __future__ import annotations

import pytest

from agent.mounts import Mount, mount_of, parse_mountinfo, pick_up, watch_limit_reason

MOUNTINFO = r"""22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid shared:12 - proc proc rw
30 22 8:17 / /srv/media rw,relatime shared:20 - ext4 /dev/sdb1 rw
31 30 0:45 / /srv/media/nas rw,relatime shared:21 - nfs4 nas:/export/tv rw,vers=4.2
32 22 0:46 / /mnt/My\040Movies rw,relatime shared:22 master:3 - cifs //nas/movies rw,vers=3.1.1
33 22 0:47 / /mnt/remote rw,nosuid,nodev - fuse.sshfs user@host:/videos rw,user_id=0
34 22 8:33 / /mnt/usb rw - fuseblk /dev/sdc1 rw,user_id=0
35 22 0:48 / /mnt/pool rw - fuse.mergerfs disk1:disk2 rw
36 22 0:49 / /mnt/vm rw - 9p share rw,trans=virtio
37 22 0:50 / /mnt/tabs\011and\134slash rw - ext4 /dev/sdd1 rw
38 22 0:51 / /mnt/over rw - nfs server:/a rw
39 22 0:52 / /mnt/over rw - xfs /dev/sde1 rw
40 22 0:53 / /mnt/ceph rw - ceph 10.0.0.1:/ rw
41 22 0:54 / /mnt/smb rw - smb3 //nas/x rw
"""


def test_mount_points_are_unescaped_and_the_type_comes_after_the_separator() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert Mount("/mnt/My Movies", "cifs", "//nas/movies") in mounts
    assert Mount("/mnt/tabs\tand\\slash", "ext4", "/dev/sdd1") in mounts
    assert Mount("/srv/media/nas", "nfs4", "nas:/export/tv") in mounts  # optional fields before '-' skipped


def test_a_malformed_line_is_skipped_not_fatal() -> None:
    assert parse_mountinfo("garbage\n22 1 8:1 / / rw - ext4 /dev/sda1 rw\n") == [Mount("/", "ext4", "/dev/sda1")]


@pytest.mark.parametrize(
    "path, mount_point",
    [
        pytest.param("/srv/media/tv", "/srv/media", id="longest-prefix"),
        pytest.param("/srv/media", "/srv/media", id="the-mount-point-itself"),
        pytest.param("/srv/mediaX/tv", "/", id="a-prefix-must-end-at-a-slash"),
        pytest.param("/srv/media/nas/Show", "/srv/media/nas", id="nested-mount"),
        pytest.param("/mnt/over/x", "/mnt/over", id="the-last-of-two-at-one-point-is-on-top"),
    ],
)
def test_the_mount_holding_a_path_is_the_longest_mount_point_prefix(path: str, mount_point: str) -> None:
    found = mount_of(path, parse_mountinfo(MOUNTINFO))
    assert found is not None and found.mount_point == mount_point
    if path.startswith("/mnt/over"):
        assert found.fs_type == "xfs"


@pytest.mark.parametrize(
    "source, mode, reason_has",
    [
        pytest.param("/srv/media/movies", "events", None, id="local-ext4-gets-events"),
        pytest.param("/home/tv", "events", None, id="the-root-filesystem-gets-events"),
        pytest.param("/srv/media/nas/tv", "polling", "nfs4", id="nfs4"),
        pytest.param("/srv/media", "polling", "/srv/media/nas", id="a-remote-mount-inside-the-library"),
        pytest.param("/mnt/My Movies", "polling", "cifs", id="cifs-at-an-escaped-mount-point"),
        pytest.param("/mnt/remote/tv", "polling", "fuse.sshfs", id="fuse-sshfs"),
        pytest.param("/mnt/pool/tv", "polling", "fuse.mergerfs", id="any-fuse-filesystem"),
        pytest.param("/mnt/usb/tv", "events", None, id="fuseblk-is-a-local-disk"),
        pytest.param("/mnt/vm", "polling", "9p", id="9p"),
        pytest.param("/mnt/ceph/tv", "polling", "ceph", id="ceph"),
        pytest.param("/mnt/smb/tv", "polling", "smb3", id="smb3"),
        pytest.param("/mnt/over/tv", "events", None, id="a-local-disk-mounted-over-an-nfs-mount"),
    ],
)
def test_a_library_polls_where_other_machines_changes_send_no_events(
    source: str, mode: str, reason_has: str | None
) -> None:
    decision = pick_up(source, parse_mountinfo(MOUNTINFO))
    assert decision.mode == mode
    if reason_has is None:
        assert decision.reason is None
    else:
        assert decision.reason is not None
        assert reason_has in decision.reason
        assert "no inotify events" in decision.reason


def test_without_a_mount_table_a_library_gets_events() -> None:
    assert pick_up("/srv/tv", []).mode == "events"


def test_the_watch_limit_reason_names_the_sysctl_to_raise() -> None:
    reason = watch_limit_reason(limit=8192, folders_needed=None)
    assert "fs.inotify.max_user_watches" in reason
    assert "8192" in reason
