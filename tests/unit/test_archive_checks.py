"""Decision tables for the archive checks that are pure: which mounts stand between the archive's
temp folder and an output folder."""

from __future__ import annotations

import pytest

from agent.archive_checks import READ, READ_AND_ENTER, can_access, folder_mode, mount_points, mounts_in_the_way

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


@pytest.mark.parametrize(
    "file_mode, expected",
    [(0o664, 0o775), (0o644, 0o755), (0o640, 0o750), (0o600, 0o700), (0o666, 0o777)],
    ids=lambda mode: f"{mode:04o}",
)
def test_created_folders_can_be_entered_wherever_files_can_be_read(file_mode: int, expected: int) -> None:
    assert folder_mode(file_mode) == expected


HB2R, RESILIO, MEDIA = 990, 991, 992  # uids; MEDIA is also a gid


@pytest.mark.parametrize(
    "reader_uid, reader_groups, group_id, mode, need, expected",
    [
        pytest.param(RESILIO, {RESILIO}, RESILIO, 0o640, READ, True, id="resilio-in-the-files-group-reads-0640"),
        pytest.param(RESILIO, {RESILIO}, HB2R, 0o640, READ, False, id="umask-0027-locks-resilio-out"),
        pytest.param(RESILIO, {RESILIO}, HB2R, 0o644, READ, True, id="world-readable-files-are-read-by-anyone"),
        pytest.param(RESILIO, {RESILIO}, RESILIO, 0o750, READ_AND_ENTER, True, id="group-enters-a-0750-folder"),
        pytest.param(RESILIO, {RESILIO}, HB2R, 0o751, READ_AND_ENTER, False, id="x-without-r-is-not-enough"),
        pytest.param(None, {MEDIA}, MEDIA, 0o660, READ, True, id="members-of-the-archive-group-read-group-files"),
        pytest.param(HB2R, {HB2R}, MEDIA, 0o064, READ, False, id="the-owner-class-wins-even-when-it-has-less"),
        pytest.param(0, set(), HB2R, 0o600, READ, True, id="root-reads-anything"),
    ],
)
def test_who_can_read_what_hb2r_publishes(
    reader_uid: int | None, reader_groups: set[int], group_id: int, mode: int, need: int, expected: bool
) -> None:
    facts = can_access(
        reader_uid=reader_uid, reader_groups=reader_groups, owner_uid=HB2R, group_id=group_id, mode=mode, need=need
    )
    assert facts is expected
