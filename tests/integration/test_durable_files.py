"""One atomic write and one folder fsync for all of agent/ (agent.durable), and how it treats errors.

A crash must leave the old file or the new one, never half of either, and a real I/O error
while making a rename durable must reach the operator, not vanish: only the errnos with which
a file system says "I cannot fsync a folder" are tolerated.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from agent import durable
from tests.support.archive import tmpfs


def test_a_write_replaces_the_whole_file_and_keeps_its_mode(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", size="1m") as folder:
        path = folder / "IgnoreList"
        path.write_bytes(b"old\n")
        path.chmod(0o640)

        durable.write_atomically(path, b"old\nnew\n")

        assert path.read_bytes() == b"old\nnew\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert sorted(os.listdir(folder)) == ["IgnoreList"]  # no temp file left


def test_a_private_write_is_for_the_owner_only(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", size="1m") as folder:
        path = folder / "admin.password"
        path.write_bytes(b"old")
        path.chmod(0o644)

        durable.write_atomically(path, b"secret\n", mode=0o600)

        assert path.read_bytes() == b"secret\n"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_full_file_system_leaves_the_old_file_whole_and_no_temp(tmp_path: Path) -> None:
    # A real full file system: a 64 KiB tmpfs cannot take a 1 MiB write.
    with tmpfs(tmp_path / "fs", size="64k") as folder:
        path = folder / "IgnoreList"
        path.write_bytes(b"old\n")

        with pytest.raises(OSError) as raised:
            durable.write_atomically(path, b"x" * (1 << 20))

        assert raised.value.errno == errno.ENOSPC
        assert path.read_bytes() == b"old\n"
        assert sorted(os.listdir(folder)) == ["IgnoreList"]


def test_a_real_folder_is_synced_without_error(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "fs", size="1m") as folder:
        durable.fsync_folder(folder)


def test_a_folder_that_is_not_there_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        durable.fsync_folder(tmp_path / "missing")


# No file system here can be made to fail fsync() of a folder on demand (EIO needs failing
# hardware, EINVAL a FUSE or SMB mount that lacks it), so these two replace os.fsync with a
# fake that raises the errno, and nothing else.
@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOTSUP, errno.EBADF])
def test_a_file_system_that_cannot_sync_folders_is_tolerated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(os, "fsync", _failing(code))

    durable.fsync_folder(tmp_path)


@pytest.mark.parametrize("code", [errno.EIO, errno.ENOSPC, errno.EROFS])
def test_a_real_io_error_while_syncing_a_folder_is_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    monkeypatch.setattr(os, "fsync", _failing(code))

    with pytest.raises(OSError) as raised:
        durable.fsync_folder(tmp_path)

    assert raised.value.errno == code


def _failing(code: int):  # type: ignore[no-untyped-def]
    def fsync(descriptor: int) -> None:
        raise OSError(code, os.strerror(code))

    return fsync
