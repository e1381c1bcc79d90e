"""Resilio must be able to read what hb2r publishes, whatever hb2r's umask.

A real second user stands in for Resilio's `rslsync`: it owns the archive (as Resilio owns its
share folder), and after an encode run under the unit's UMask=0027 it reads the published file
with `runuser`. The folders are made under a fresh 0755 folder in /tmp, since pytest's own
temporary folders are private to root.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.store import jobs
from tests.support.archive import Agent, require_tools, write_config
from tests.support.clips import make_clip


@pytest.fixture
def resilio_user() -> Iterator[str]:
    """A temporary system user with a group of its own name, removed after the test."""
    name = f"hb2rrs{uuid.uuid4().hex[:8]}"
    subprocess.run(["groupadd", "--system", name], check=True)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--gid", name, "--shell", "/usr/sbin/nologin", name], check=True
    )
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False)
        subprocess.run(["groupdel", name], check=False)


@pytest.fixture
def open_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="hb2r-perm-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def share_owned_by(root: Path, user: str) -> Path:
    archive = root / "archive"
    archive.mkdir()
    shutil.chown(archive, user, user)
    archive.chmod(0o775)
    return archive


def reads_as(user: str, path: Path) -> bool:
    return (
        subprocess.run(["runuser", "-u", user, "--", "cat", str(path)], capture_output=True, check=False).returncode
        == 0
    )


def test_resilio_reads_what_hb2r_publishes_under_umask_0027(open_root: Path, resilio_user: str) -> None:
    require_tools()
    archive = share_owned_by(open_root, resilio_user)
    config_path = write_config(open_root, archive=archive)
    make_clip(open_root / "tv" / "Show" / "clip.mkv", seconds=1)
    agent = Agent.from_file(config_path)
    previous_umask = os.umask(0o027)  # systemd's UMask=0027 for the hb2r unit

    async def scenario() -> None:
        await agent.scan()
        assert agent.state.archive_problems == {}
        done = await agent.run_one()
        assert done.state == jobs.JobState.DONE, done.error

    try:
        asyncio.run(scenario())
    finally:
        os.umask(previous_umask)
        agent.close()
    published = archive / "TV" / "Show" / "clip.mkv"
    assert reads_as(resilio_user, published)
    group = archive.stat().st_gid
    for folder in (archive / "TV", archive / "TV" / "Show"):
        assert (stat.S_IMODE(folder.stat().st_mode), folder.stat().st_gid) == (0o775, group)
    assert (stat.S_IMODE(published.stat().st_mode), published.stat().st_gid) == (0o664, group)


def test_a_mode_the_share_owner_cannot_read_is_reported_at_start(open_root: Path, resilio_user: str) -> None:
    archive = share_owned_by(open_root, resilio_user)
    config_path = write_config(open_root, archive=archive, extra_paths=", archive_mode: '0600'")
    agent = Agent.from_file(config_path)

    async def scenario() -> None:
        await agent.scan()
        health = await agent.health()
        assert health["status"] == "degraded"
        [problem] = [problem for problem in health["problems"] if problem.startswith("archive:")]
        assert resilio_user in problem and "0600" in problem and "cannot read" in problem

    try:
        asyncio.run(scenario())
    finally:
        agent.close()
