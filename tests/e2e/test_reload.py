"""`hb2r run` as a real process: what a config reload and a flaky HandBrakeCLI must not break.

/health is read over HTTP on loopback, as a monitoring probe would.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent_process import StartAgent
from tests.support.clips import make_clip
from tests.support.configs import write_config
from tests.support.outcomes import jobs_by_state, published
from tests.support.waiting import wait_for


def health(config: Path) -> dict[str, Any]:
    listen = next(line for line in config.read_text().splitlines() if line.startswith("server:"))
    port = int(listen.rsplit(":", 1)[1].strip("\"' }"))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:
        return dict(json.load(error))
    except OSError:
        return {}


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """Mount a tmpfs of a given size (we are root); unmount every one at the end."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "--lazy", str(path)], check=True)


def test_a_reload_with_a_new_archive_measures_the_new_archive(
    tmp_path: Path, agents: StartAgent, tmpfs: Callable[[Path, str], Path]
) -> None:
    # Two archives on file systems of distinct sizes (tmpfs takes no memory until written).
    tmpfs(tmp_path / "archive", "3g")
    tmpfs(tmp_path / "archive2", "5g")
    config = write_config(tmp_path)
    agent = agents(config)
    wait_for(lambda: health(config).get("system", {}).get("disk_free_gb") == 3.0, what="3 GB free", agent=agent)

    config.write_text(config.read_text().replace("archive: archive,", "archive: archive2,"))
    agent.process.send_signal(signal.SIGHUP)

    wait_for(lambda: agent.events("config reloaded"), what="the reload", agent=agent)
    wait_for(lambda: health(config).get("system", {}).get("disk_free_gb") == 5.0, what="5 GB free", agent=agent)


FLAKY_HANDBRAKE = """#!/bin/sh
# The real HandBrakeCLI, except that it fails while the flag file exists: the real one cannot
# be made to fail its version and preset probes on demand.
if [ -e "$(dirname "$0")/fail" ]; then
    echo "HandBrakeCLI: cannot open display (simulated)" >&2
    exit 1
fi
exec HandBrakeCLI "$@"
"""


def test_a_failed_handbrake_probe_is_retried_without_a_reload(tmp_path: Path, agents: StartAgent) -> None:
    wrapper = tmp_path / "bin" / "HandBrakeCLI"
    wrapper.parent.mkdir()
    wrapper.write_text(FLAKY_HANDBRAKE)
    wrapper.chmod(0o755)
    flag = wrapper.parent / "fail"
    flag.touch()
    config = write_config(tmp_path)
    config.write_text(config.read_text() + f"handbrake: {{binary: {wrapper}}}\n")
    make_clip(tmp_path / "tv" / "E01.mkv", seconds=1)
    agent = agents(config)

    degraded = wait_for(
        lambda: (report := health(config)).get("status") == "degraded" and report, what="degraded", agent=agent
    )
    assert isinstance(degraded, dict)
    assert any("HandBrakeCLI" in problem for problem in degraded["problems"]), degraded
    assert jobs_by_state(tmp_path) == {}  # nothing can be queued without HandBrake

    flag.unlink()  # HandBrakeCLI works again; no reload, no restart

    wait_for(lambda: published(tmp_path) == ["TV/E01.mkv"], what="the file encoded", agent=agent)
    wait_for(lambda: health(config).get("status") == "healthy", what="healthy again", agent=agent)
    assert agent.events("config reloaded") == []
