"""What the deployment tests share: a booted test host with its inventory variables, ansible-playbook
runs against it, and polling with a deadline (the tests live in test_deploy*.py, one booted host per module)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.passwords import hash_password
from tests.support.ports import free_port

from .testhost import TestHost

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ADMIN_PASSWORD = "deploy-test-admin"
ARCHIVE = "/srv/archive"
TV = "/srv/media/tv"


class Deployment:
    """The booted host, its inventory variables, and ansible-playbook runs against it."""

    def __init__(self, host: TestHost, workdir: Path) -> None:
        self.host = host
        self.workdir = workdir
        self.port = free_port()
        self.variables: dict[str, Any] = {
            "hb2r_archive": ARCHIVE,
            "hb2r_libraries": [{"name": "tv", "source": TV, "output": "TV", "preset": "tv", "stable_after": "1s"}],
            "hb2r_presets": {"tv": {"handbrake": "Very Fast 480p30", "container": "mkv"}},
            "hb2r_listen": f"127.0.0.1:{self.port}",
            "hb2r_scan_interval": "2s",
            "hb2r_limits": {
                "cpu_percent": 100,
                "memory_percent": 100,
                "min_free_memory": "64MiB",
                "min_free_disk": "1MiB",
                "max_jobs": 1,
            },
            "hb2r_users": [
                {"name": "admin", "role": "admin", "password_hash": hash_password(ADMIN_PASSWORD, rounds=4)}
            ],
            "hb2r_memory_max": "2G",
            "hb2r_cpu_quota": "200%",
            "hb2r_watchdog_sec": "30s",
            "hb2r_health_timeout": 60,
            "hb2r_backups_keep": 3,
        }

    def inventory(self, **overrides: Any) -> Path:
        variables = {key: value for key, value in {**self.variables, **overrides}.items() if value is not None}
        name = f"inventory-{len(list(self.workdir.glob('inventory-*.yml')))}.yml"
        return self.host.write_inventory(self.workdir / name, host_vars=variables)

    def playbook(
        self, name: str, *, inventory: Path | None = None, source: Path = REPO, extra: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        return run_playbook(inventory or self.inventory(), source / "playbooks" / name, *extra)

    def first_deploy(self, clip: Path) -> None:
        """Put clip into the library as first.mkv and deploy: the unit must be active and enabled,
        and /health must answer 200 from inside."""
        self.host.copy_in(clip, f"{TV}/first.mkv")
        first = self.playbook("deploy.yml")
        assert first.returncode == 0, explain(first)
        assert self.inside("systemctl", "is-active", "hb2r") == "active"
        assert self.inside("systemctl", "is-enabled", "hb2r") == "enabled"
        assert self.health()[0] == 200

    def inside(self, *argv: str, check: bool = True) -> str:
        return self.host.run(*argv, check=check).stdout.strip()

    def main_pid(self) -> int:
        return int(self.inside("systemctl", "show", "-p", "MainPID", "--value", "hb2r"))

    def health(self) -> tuple[int, dict[str, Any]]:
        answer = self.host.run(
            "curl", "-s", "-w", "\n%{http_code}", f"http://127.0.0.1:{self.port}/health", check=False
        ).stdout.rsplit("\n", 1)
        if len(answer) != 2 or not answer[1].isdigit() or answer[1] == "000":
            return 0, {}
        return int(answer[1]), json.loads(answer[0]) if answer[0].strip() else {}

    def sql(self, query: str) -> str:
        return self.inside("sqlite3", "-readonly", "/var/lib/hb2r/hb2r.db", query)

    def journal(self, lines: int = 40) -> str:
        return self.inside("journalctl", "-u", "hb2r", "--no-pager", "-o", "cat", "-n", str(lines), check=False)

    def release(self) -> str:
        return self.inside("readlink", "-f", "/opt/hb2r/current")


def run_playbook(inventory: Path, playbook: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ansible-playbook (this venv's) on inventory, its output captured; host keys not checked."""
    environment = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1"}
    environment["PATH"] = f"{BIN}:{environment.get('PATH', '')}"
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), *extra],
        capture_output=True,
        text=True,
        env=environment,
        timeout=900,
        check=False,
    )


def recap(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """Return the PLAY RECAP counters of the one host."""
    match = re.search(r"testhost\s*:\s*((?:\w+=\d+\s*)+)", result.stdout)
    assert match, result.stdout[-3000:] + result.stderr[-2000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"
