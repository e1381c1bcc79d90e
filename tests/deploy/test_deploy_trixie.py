"""The playbooks against a second system: Debian 13 "trixie" (Python 3.13, systemd 257,
HandBrakeCLI 1.9), booted with systemd-nspawn beside the Debian 12 of test_deploy.py. Debian 12
and 13 stand in for Ubuntu 22.04 and 24.04, which cannot be booted here (no Ubuntu archive).

One host serves the module, in order: first, on the fresh host, a deploy that the preflight
must refuse because the host's python3 is older than hb2r requires, with nothing changed; then
the deploy itself: the unit active, /health 200, a clip encoded into the archive, and a second
deploy that changes nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clips import make_clip
from tests.support.waiting import wait_for

from .deployment import ARCHIVE, TV, Deployment, explain, recap
from .testhost import boot_test_host

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="booting a systemd-nspawn host needs root")

# Ubuntu 22.04's python3 answers this; the preflight must refuse it.
OLD_PYTHON_VERSION = "Python 3.10.12"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("deploy-trixie")
    with boot_test_host(workdir / "host", name="hb2r-trixie", suite="trixie") as host:
        assert host.run("cat", "/etc/debian_version").stdout.startswith("13.")
        host.run("mkdir", "-p", TV, ARCHIVE)
        host.run("chmod", "0777", ARCHIVE)  # the agent's user must be able to write the archive
        yield Deployment(host, workdir)


def host_footprint(deployment: Deployment) -> dict[str, bool]:
    """Whether each thing a deploy creates exists on the host."""
    paths = ("/opt/hb2r", "/etc/hb2r", "/var/lib/hb2r", "/var/backups/hb2r", "/etc/systemd/system/hb2r.service")
    found = {path: deployment.host.run("test", "-e", path, check=False).returncode == 0 for path in paths}
    found["user hb2r"] = deployment.host.run("id", "hb2r", check=False).returncode == 0
    return found


def test_a_host_whose_python_is_too_old_is_refused_before_anything_changes(deployment: Deployment) -> None:
    host = deployment.host
    before = host_footprint(deployment)
    assert not any(before.values()), before  # a fresh host
    # No host with a python3 older than 3.11 can be booted here (Ubuntu 22.04 needs the Ubuntu
    # archive; bullseye is on its way out of Debian's), so a stand-in answers for python3 on the
    # PATH the preflight uses, as Ubuntu 22.04's does. Ansible itself runs on /usr/bin/python3.
    shim = "/usr/local/bin/python3"
    host.run("sh", "-c", f"printf '#!/bin/sh\\necho \"{OLD_PYTHON_VERSION}\"\\n' > {shim} && chmod 0755 {shim}")
    try:
        assert host.run("sh", "-c", "python3 --version").stdout.strip() == OLD_PYTHON_VERSION

        result = deployment.playbook("deploy.yml")
    finally:
        host.run("rm", "-f", shim)

    said = " ".join(result.stdout.split())  # ansible-playbook wraps long messages
    assert result.returncode != 0
    assert "has Python 3.10.12; hb2r requires Python >= 3.11. Nothing was changed." in said, explain(result)
    assert host_footprint(deployment) == before


def test_a_deploy_on_debian_13(deployment: Deployment, tmp_path: Path) -> None:
    deployment.first_deploy(make_clip(tmp_path / "first.mkv", seconds=2))
    # The release runs on the host's own Python 3.13.
    assert deployment.inside(f"{deployment.release()}/venv/bin/python", "--version").startswith("Python 3.13.")
    wait_for(
        lambda: deployment.inside("ls", f"{ARCHIVE}/TV", check=False) == "first.mkv",
        what="the clip's transcode",
        explain=deployment.journal,
        interval=0.5,
    )
    wait_for(
        lambda: deployment.sql("SELECT rel_path FROM ledger") == "first.mkv",
        what="the ledger to record it",
        interval=0.5,
    )
    probe = deployment.inside(
        "ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", f"{ARCHIVE}/TV/first.mkv"
    )
    assert abs(float(probe) - 2.0) < 0.5

    again = deployment.playbook("deploy.yml")

    assert again.returncode == 0, explain(again)
    assert recap(again)["changed"] == 0, explain(again)
    assert deployment.health()[0] == 200
