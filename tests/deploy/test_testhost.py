"""Smoke test of the systemd-nspawn test host that the deployment tests drive Ansible at (see testhost.py)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .testhost import CACHE_DIR, CommandFailed, TestHost, boot_test_host, ensure_root

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="boots a systemd-nspawn container: needs root")

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / ".venv/bin/ansible"
# Failed units that do not matter for deployments (none so far).
IGNORED_FAILED_UNITS: frozenset[str] = frozenset()

log = logging.getLogger(__name__)


@pytest.fixture(scope="module")
def root() -> Path:
    started = time.monotonic()
    path = ensure_root()
    log.info("ensure_root() took %.1f s", time.monotonic() - started)
    return path


@pytest.fixture(scope="module")
def host(root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestHost]:
    started = time.monotonic()
    with boot_test_host(tmp_path_factory.mktemp("testhost")) as booted:
        log.info("boot to SSH took %.1f s", time.monotonic() - started)
        yield booted


def nspawn_processes(machine: str) -> list[int]:
    """systemd-nspawn processes (not zombies) whose command line names ``machine``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and argv and argv[0].endswith(b"systemd-nspawn") and machine.encode() in argv:
            found.append(int(entry.name))
    return found


def mounts_under(path: Path) -> list[str]:
    lines = Path("/proc/mounts").read_text().splitlines()
    return [line for line in lines if line.split()[1] == str(path) or line.split()[1].startswith(f"{path}/")]


def cgroups_named(machine: str) -> list[Path]:
    return [path for path in Path("/sys/fs/cgroup").glob(f"*/*{machine}*") if path.is_dir()]


def assert_gone(machine: str, root: Path) -> None:
    deadline = time.monotonic() + 5  # a zombie nspawn reparented to init may take a moment to be reaped
    while nspawn_processes(machine) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert nspawn_processes(machine) == []
    assert mounts_under(root) == []
    assert cgroups_named(machine) == []
    assert not (CACHE_DIR / "run" / f"{machine}.json").exists()


def test_pid1_is_systemd(host: TestHost) -> None:
    assert host.run("cat", "/proc/1/comm").stdout.strip() == "systemd"
    assert host.run("readlink", "/proc/1/exe").stdout.strip().endswith("/systemd")
    assert host.run("systemd-detect-virt", "--container").stdout.strip() == "systemd-nspawn"
    assert host.run("hostname").stdout.strip() == host.name


def test_system_is_running_without_failed_units(host: TestHost) -> None:
    state = host.run("systemctl", "is-system-running", check=False).stdout.strip()
    failed = host.run("systemctl", "--failed", "--no-legend", "--plain").stdout
    units = {line.split()[0] for line in failed.splitlines() if line.strip()}
    assert state in ("running", "degraded"), failed
    assert units - IGNORED_FAILED_UNITS == set(), failed
    assert host.run("systemctl", "list-jobs", "--no-legend").stdout.strip() == ""


def test_only_sshd_listens_and_only_on_loopback(host: TestHost) -> None:
    # The container shares the host's network; `ss -p` inside names only the container's own processes.
    sockets = host.run("ss", "-Hltunp").stdout.splitlines()
    own = [line for line in sockets if "users:((" in line]
    assert own, sockets
    for line in own:
        assert '(("sshd",' in line, own
        assert line.split()[4] == f"127.0.0.1:{host.ssh_port}", own


def test_ssh_with_the_key_runs_a_command(host: TestHost) -> None:
    result = subprocess.run(
        [
            "ssh", "-i", str(host.private_key), "-p", str(host.ssh_port), "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "root@127.0.0.1", "id -un; hostname",
        ],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["root", host.name]
    # no password logins, and the per-boot drop-in is what sshd runs with
    config = host.run("sshd", "-T").stdout
    assert "passwordauthentication no" in config
    assert "permitrootlogin without-password" in config  # sshd -T's spelling of prohibit-password
    assert f"listenaddress 127.0.0.1:{host.ssh_port}" in config


def test_ansible_ping(host: TestHost, tmp_path: Path) -> None:
    inventory = host.write_inventory(tmp_path / "inventory.yml", host_vars={"hb2r_probe": "from host_vars"})
    assert yaml.safe_load(inventory.read_text())["hb2r"]["hosts"]["testhost"]["ansible_port"] == host.ssh_port
    env = {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    ping = subprocess.run(
        [str(ANSIBLE), "-i", str(inventory), "testhost", "-m", "ansible.builtin.ping"],
        capture_output=True, text=True, timeout=300, check=False, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert '"ping": "pong"' in ping.stdout
    probe = subprocess.run(
        [str(ANSIBLE), "-i", str(inventory), "hb2r", "-m", "ansible.builtin.debug", "-a", "var=hb2r_probe"],
        capture_output=True, text=True, timeout=300, check=False, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "from host_vars" in probe.stdout


def test_run_and_copy_in(host: TestHost, tmp_path: Path) -> None:
    assert host.run("cat", input="über\n").stdout == "über\n"
    with pytest.raises(CommandFailed, match="no-such-file"):
        host.run("ls", "/no-such-file")
    assert host.run("false", check=False).returncode == 1
    with pytest.raises(subprocess.TimeoutExpired):
        host.run("sleep", "60", timeout=0.5)
    assert "sleep 60" not in host.run("ps", "-eo", "args").stdout  # a timed-out command does not linger
    source = tmp_path / "probe.sh"
    payload = b"#!/bin/sh\necho copied\n" + bytes(range(256))
    source.write_bytes(payload)
    source.chmod(0o750)
    host.copy_in(source, "/opt/hb2r-probe/probe.sh")
    assert host.run("stat", "-c", "%a %U", "/opt/hb2r-probe/probe.sh").stdout.split() == ["750", "root"]
    assert host.run("sh", "-c", "head -c 23 /opt/hb2r-probe/probe.sh | sh").stdout == "copied\n"
    size = host.run("stat", "-c", "%s", "/opt/hb2r-probe/probe.sh").stdout.strip()
    assert int(size) == len(payload)


def test_writes_do_not_survive_a_reboot(root: Path, tmp_path: Path) -> None:
    with boot_test_host(tmp_path, name="hb2r-volatile") as first:
        first.run("sh", "-c", "echo x > /etc/hb2r-marker && echo y > /root/hb2r-marker")
        first.run("test", "-f", "/etc/hb2r-marker")
    with boot_test_host(tmp_path, name="hb2r-volatile") as second:
        assert second.name != first.name
        assert second.run("test", "-e", "/etc/hb2r-marker", check=False).returncode == 1
        assert second.run("test", "-e", "/root/hb2r-marker", check=False).returncode == 1
    assert not (root / "etc/hb2r-marker").exists()


def test_exit_leaves_nothing_behind_even_when_the_body_raises(root: Path, tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), boot_test_host(tmp_path, name="hb2r-cleanup") as booted:
        leader = booted.leader_pid
        assert nspawn_processes(booted.name)
        raise Boom
    assert not Path(f"/proc/{leader}").exists()
    assert_gone(booted.name, root)
    booted.stop()  # idempotent


def test_a_killed_run_leaves_nothing_after_the_next_boot(root: Path, tmp_path: Path) -> None:
    # A test process killed with SIGKILL gets no chance to clean up: systemd-nspawn then gets SIGTERM from the
    # kernel (parent-death signal), and the next boot removes what is left (its record and cgroups).
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from tests.deploy.testhost import boot_test_host
        with boot_test_host(Path({str(tmp_path)!r}), name="hb2r-killed") as host:
            print(host.name, flush=True)
            sys.stdin.read()
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HB2R_TESTHOST_CACHE": str(CACHE_DIR)}
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        assert child.stdout is not None
        machine = child.stdout.readline().strip()
        assert machine.startswith("hb2r-killed-")
        assert nspawn_processes(machine)
        child.send_signal(signal.SIGKILL)
    with boot_test_host(tmp_path, name="hb2r-next"):
        pass
    assert_gone(machine, root)


def test_a_trixie_host_boots_with_its_newer_python_and_systemd(tmp_path: Path) -> None:
    with boot_test_host(tmp_path, name="hb2r-trixie-smoke", suite="trixie") as trixie:
        assert trixie.run("cat", "/etc/debian_version").stdout.startswith("13.")
        assert trixie.run("python3", "--version").stdout.startswith("Python 3.13.")
        assert trixie.run("systemctl", "--version").stdout.startswith("systemd 257")
        assert trixie.run("systemctl", "is-system-running", "--wait").stdout.strip() == "running"
        assert trixie.run("systemctl", "--failed", "--no-legend").stdout.strip() == ""


def test_an_unknown_suite_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown test host suite 'jammy'; known: bookworm, trixie"):
        ensure_root("jammy")
