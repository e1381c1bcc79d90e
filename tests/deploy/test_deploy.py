"""The playbooks against a real systemd host: a Debian 12 container booted with systemd-nspawn,
driven with ansible-playbook over SSH on a loopback port (tests/deploy/testhost.py).

One host serves the module. The life of a deployment runs in order in one test, as an
operator would live it: deploy, the clip encoded, a second deploy that changes nothing, a
backup, a new release, a rollback to the old one and its state, kill -9 and systemd's
restart, the journal. The bad-input tests follow on the same host and check that the
running service is left exactly as it was.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clips import make_clip
from tests.support.ports import free_port
from tests.support.waiting import wait_for

from .deployment import ARCHIVE, BIN, REPO, TV, Deployment, explain, recap
from .testhost import boot_test_host

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="booting a systemd-nspawn host needs root")


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("deploy")
    with boot_test_host(workdir / "host", name="hb2r-deploy") as host:
        host.run("mkdir", "-p", TV, ARCHIVE)
        host.run("chmod", "0777", ARCHIVE)  # the agent's user must be able to write the archive
        yield Deployment(host, workdir)


def new_release_checkout(target: Path) -> Path:
    """Copy the checkout with the version bumped: what an operator deploys as the next release."""
    for part in ("agent", "playbooks", "packaging", "scripts"):
        shutil.copytree(REPO / part, target / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / part, target / part)
    init = target / "agent" / "__init__.py"
    init.write_text(re.sub(r'__version__ = "[^"]+"', '__version__ = "99.0.0"', init.read_text()))
    return target


def test_the_life_of_a_deployment(deployment: Deployment, tmp_path: Path) -> None:
    host = deployment.host
    # Deploy: the unit is active and enabled, /health answers 200 from inside.
    deployment.first_deploy(make_clip(tmp_path / "first.mkv", seconds=2))
    assert deployment.inside("stat", "-c", "%U %a", "/etc/hb2r/config.yaml") == "root 640"
    first_release = deployment.release()
    assert re.fullmatch(r"/opt/hb2r/releases/0\.1\.0-\d{8}T\d{6}", first_release), first_release

    # The engine encodes the clip into the archive.
    wait_for(
        lambda: deployment.inside("ls", f"{ARCHIVE}/TV", check=False) == "first.mkv",
        what="the clip's transcode",
        explain=deployment.journal,
        interval=0.5,
    )

    # A second deploy with nothing changed changes nothing.
    again = deployment.playbook("deploy.yml")
    assert again.returncode == 0, explain(again)
    assert recap(again)["changed"] == 0, explain(again)

    # A backup: a 0600 tarball holding a consistent database, the config and the unit.
    backup = deployment.playbook("backup.yml")
    assert backup.returncode == 0, explain(backup)
    tarballs = deployment.inside("sh", "-c", "ls /var/backups/hb2r/*.tar.gz").split()
    assert len(tarballs) == 1  # the first deploy had no state to back up; the second changed nothing
    members = deployment.inside("tar", "-tzf", tarballs[-1]).split()
    assert {"hb2r.db", "etc/hb2r/config.yaml", "etc/systemd/system/hb2r.service"} <= set(members)
    assert deployment.inside("stat", "-c", "%a", tarballs[-1]) == "600"

    # A new release, then more work done by it.
    checkout = new_release_checkout(tmp_path / "next")
    upgrade = deployment.playbook("deploy.yml", source=checkout)
    assert upgrade.returncode == 0, explain(upgrade)
    second_release = deployment.release()
    assert second_release != first_release and "/99.0.0-" in second_release
    host.copy_in(make_clip(tmp_path / "second.mkv", seconds=2), f"{TV}/second.mkv")
    wait_for(
        lambda: deployment.sql("SELECT count(*) FROM ledger") == "2",
        what="the second transcode",
        explain=deployment.journal,
        interval=0.5,
    )

    # Rollback: the previous release runs again, with the state from before the upgrade.
    rollback = deployment.playbook("rollback.yml")
    assert rollback.returncode == 0, explain(rollback)
    assert deployment.release() == first_release
    assert deployment.inside(f"{first_release}/venv/bin/hb2r", "--version") == "hb2r 0.1.0"
    assert deployment.health()[0] == 200
    assert deployment.sql("SELECT count(*) FROM jobs WHERE rel_path = 'second.mkv'") == "0"
    assert deployment.sql("SELECT rel_path FROM ledger WHERE rel_path = 'first.mkv'") == "first.mkv"

    # kill -9 of the agent: systemd starts it again.
    killed = deployment.main_pid()
    host.run("kill", "-9", str(killed))
    wait_for(
        lambda: deployment.main_pid() not in (0, killed) and deployment.health()[0] == 200,
        what="systemd to restart the agent",
        explain=deployment.journal,
        interval=0.5,
    )
    assert int(deployment.inside("systemctl", "show", "-p", "NRestarts", "--value", "hb2r")) >= 1

    # The journal holds the agent's JSON lines.
    journal = deployment.inside("journalctl", "-u", "hb2r", "--no-pager", "-o", "cat").splitlines()
    events = [json.loads(line) for line in journal if line.startswith("{")]
    assert any(event.get("event") == "agent started" for event in events)
    assert any(event.get("event") == "job published" and event.get("path") == "first.mkv" for event in events)


def service_state(deployment: Deployment) -> tuple[int, str, str]:
    return (
        deployment.main_pid(),
        deployment.release(),
        deployment.inside("sha256sum", "/etc/hb2r/config.yaml"),
    )


def test_a_config_that_does_not_validate_fails_before_the_running_service_is_touched(
    deployment: Deployment,
) -> None:
    before = service_state(deployment)
    libraries = [{"name": "tv", "source": TV, "output": "TV", "preset": "tvv", "stable_after": "1s"}]

    result = deployment.playbook("deploy.yml", inventory=deployment.inventory(hb2r_libraries=libraries))

    assert result.returncode != 0
    assert "the config does not validate" in result.stdout and "'tvv' is not defined" in result.stdout
    assert service_state(deployment) == before
    assert deployment.inside("systemctl", "is-active", "hb2r") == "active"


def test_a_missing_inventory_variable_is_named(deployment: Deployment) -> None:
    before = service_state(deployment)

    result = deployment.playbook("deploy.yml", inventory=deployment.inventory(hb2r_archive=None))

    assert result.returncode != 0
    assert "missing inventory variable: set hb2r_archive" in result.stdout
    assert service_state(deployment) == before


def test_a_target_without_enough_disk_is_refused(deployment: Deployment) -> None:
    before = service_state(deployment)

    result = deployment.playbook("deploy.yml", inventory=deployment.inventory(hb2r_min_free_disk_mb=10**9))

    assert result.returncode != 0
    assert "a deploy needs hb2r_min_free_disk_mb" in result.stdout
    assert service_state(deployment) == before


UNIT = "/etc/systemd/system/hb2r.service"
ENVIRONMENT_FILE = "/etc/hb2r/environment"


def installed_files(deployment: Deployment) -> dict[str, str]:
    """The unit and environment file as installed: their bytes (base64) and owner, group and mode."""
    return {
        path: deployment.inside("sh", "-c", 'stat -c "%U %G %a" "$1" && base64 -w0 "$1"', "-", path)
        for path in (UNIT, ENVIRONMENT_FILE)
    }


def test_a_deploy_whose_agent_does_not_come_up_is_rolled_back_and_fails_loudly(deployment: Deployment) -> None:
    before = service_state(deployment)
    files_before = installed_files(deployment)
    ledger_before = deployment.sql("SELECT rel_path, output_path FROM ledger ORDER BY rel_path")
    nice_before = deployment.inside("systemctl", "show", "-p", "Nice", "--value", "hb2r")
    # A config that validates but on which the agent cannot start: its secret file would be in
    # /etc, which the unit makes read-only. The same deploy changes the unit (Nice=, MemoryMax=)
    # and the environment file, which the rollback must put back too.
    broken = deployment.inventory(
        hb2r_auth={"jwt_secret_file": "/etc/hb2r/jwt.secret"},
        hb2r_health_timeout=20,
        hb2r_nice=int(nice_before) + 3,
        hb2r_memory_max="1536M",
        hb2r_environment={"HB2R_DEPLOY_PROBE": "from the failed deploy"},
    )

    result = deployment.playbook("deploy.yml", inventory=broken)

    assert result.returncode != 0
    assert "DEPLOY FAILED" in result.stdout and "rolled back to" in result.stdout, explain(result)
    assert service_state(deployment)[1:] == before[1:]  # the same release and config
    assert installed_files(deployment) == files_before, explain(result)  # unit and environment, byte for byte
    # systemd runs the old unit (reloaded after the restore), and the agent with it.
    assert deployment.inside("systemctl", "show", "-p", "NeedDaemonReload", "--value", "hb2r") == "no"
    assert deployment.inside("systemctl", "show", "-p", "Nice", "--value", "hb2r") == nice_before
    assert deployment.inside("ps", "-o", "ni=", "-p", str(deployment.main_pid())) == nice_before
    assert "HB2R_DEPLOY_PROBE" not in deployment.inside("cat", f"/proc/{deployment.main_pid()}/environ")
    assert deployment.sql("SELECT rel_path, output_path FROM ledger ORDER BY rel_path") == ledger_before
    assert deployment.inside("systemctl", "is-active", "hb2r") == "active"
    assert deployment.health()[0] == 200


def test_ops_status_runs_the_playbook_and_streams_its_tasks(deployment: Deployment) -> None:
    environment = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False"}
    environment["PATH"] = f"{BIN}:{environment.get('PATH', '')}"

    result = subprocess.run(
        [str(BIN / "hb2r"), "ops", "status", "-i", str(deployment.inventory())],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Ask /health" in result.stdout
    assert '"status": "healthy"' in result.stdout or "'status': 'healthy'" in result.stdout


def test_an_unreachable_host_fails_early_and_says_so(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "hb2r:\n  hosts:\n    nowhere:\n"
        f"      ansible_host: 127.0.0.1\n      ansible_port: {port}\n      ansible_user: root\n"
        "      ansible_ssh_common_args: '-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
    )
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "PATH": f"{BIN}:{os.environ.get('PATH', '')}"}

    result = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks" / "deploy.yml")],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "UNREACHABLE" in result.stdout and f"port {port}" in result.stdout + result.stderr
