"""Decision tables for the archive checks that are pure: which mounts stand between the archive's
temp folder and an output folder."""

from __future__ import annotations

import pytest

from agent.archive_checks import mount_points, mounts_in_the_way

MOUNTINFO = (
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "98 22 0:51 / /srv/archive/TV rw,relatime shared:50 - tmpfs tmpfs rw,size=8192k\n"
    "99 22 254:0 /media /srv/archive/My\\040Films rw,relatime shared:1 - ext4 /dev/vda rw\n"
)


def test_mount_points_are_read_with_their_escaped_spaces_decoded() -> None:
    assert mount_points(MOUNTINFO) == ["/", "/srv/archive/TV", "/srv/archive/My Films"]


@pytest.mark.parametrize(
    "target, mounts, expected",
    [
        pytest.param("/srv/archive/TV", ["/", "/srv"], [], id="mounts-above-the-archive-do-not-matter"),
        pytest.param("/srv/archive/TV", ["/srv/archive"], [], id="the-archive-itself-as-a-mount-is-fine"),
        pytest.param("/srv/archive/TV", ["/srv/archive/TV"], ["/srv/archive/TV"], id="the-output-folder-is-a-mount"),
        pytest.param(
            "/srv/archive/TV", ["/srv/archive/TV/Show"], ["/srv/archive/TV/Show"], id="a-mount-inside-the-output-folder"
        ),
        pytest.param(
            "/srv/archive/Media/TV",
            ["/srv/archive/Media"],
            ["/srv/archive/Media"],
            id="a-mount-holding-the-output-folder",
        ),
        pytest.param(
            "/srv/archive/TV",
            ["/srv/archive/TV2", "/srv/archive/Movies"],
            [],
            id="other-folders-mounts-are-not-in-the-way",
        ),
    ],
)
def test_mounts_in_the_way(target: str, mounts: list[str], expected: list[str]) -> None:
    assert mounts_in_the_way(archive="/srv/archive", target=target, mounts=mounts) == expected
