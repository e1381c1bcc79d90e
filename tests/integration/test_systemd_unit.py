"""The hardened systemd unit, rendered from packaging/hb2r.service.j2 with the example
inventory's values, as the deploy playbook renders it: systemd itself must find nothing
wrong with it and score its exposure 3.0 or better. Both checks work without systemd as PID 1."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml

from agent.descriptors import MAX_CONNECTIONS, connection_cap

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "packaging" / "hb2r.service.j2"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")


def example_values(**overrides: Any) -> dict[str, Any]:
    defaults = yaml.safe_load((REPO / "playbooks/roles/hb2r/defaults/main.yml").read_text())
    inventory = yaml.safe_load((REPO / "playbooks/inventory.example.yml").read_text())
    return {**defaults, **inventory["hb2r"]["vars"], **overrides}


def render(values: dict[str, Any]) -> str:
    # A systemd unit, not HTML: nothing to escape (Ansible's template module does the same).
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)  # noqa: S701
    return environment.from_string(TEMPLATE.read_text()).render(**values)


@pytest.fixture
def unit(tmp_path: Path) -> Path:
    # ExecStart must name an executable that exists for `verify` to pass: point the prefix at
    # a folder whose current/venv is this checkout's virtual environment.
    prefix = tmp_path / "opt"
    (prefix / "current").mkdir(parents=True)
    (prefix / "current" / "venv").symlink_to(Path(sys.prefix))
    path = tmp_path / "hb2r.service"
    path.write_text(render(example_values(hb2r_prefix=str(prefix))))
    return path


def test_systemd_finds_nothing_wrong_with_the_unit(unit: Path) -> None:
    verified = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False)

    assert (verified.returncode, verified.stdout + verified.stderr) == (0, "")


def test_the_unit_is_hardened_to_an_exposure_of_three_or_better(unit: Path) -> None:
    scored = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )

    match = re.search(r"Overall exposure level for hb2r\.service: (\d+\.\d+)", scored.stdout)
    assert match, scored.stdout + scored.stderr
    assert float(match.group(1)) <= 3.0, scored.stdout


def test_the_unit_holds_what_the_operator_set(unit: Path) -> None:
    text = unit.read_text()
    values = example_values()

    assert "Type=notify" in text and "WatchdogSec=60s" in text
    assert "ExecReload=/bin/kill -HUP $MAINPID" in text and "Restart=on-failure" in text
    assert "User=hb2r" in text and "CapabilityBoundingSet=\n" in text
    assert f"ReadWritePaths={values['hb2r_archive']} {values['hb2r_state_dir']}" in text
    for library in values["hb2r_libraries"]:
        assert f"ReadOnlyPaths={library['source']}\n" in text
    assert f"MemoryMax={values['hb2r_memory_max']}" in text and f"CPUQuota={values['hb2r_cpu_quota']}" in text
    assert f"Nice={values['hb2r_nice']}" in text


def test_the_shipped_unit_is_the_template_rendered_with_the_example_values() -> None:
    # packaging/hb2r.service is for operators who install without Ansible; it must not drift.
    assert (REPO / "packaging" / "hb2r.service").read_text() == render(example_values())


def test_the_unit_leaves_the_agent_enough_file_descriptors(unit: Path) -> None:
    # Below this the HTTP service would get fewer than MAX_CONNECTIONS (agent/descriptors.py).
    limits = re.findall(r"^LimitNOFILE=(\d+)$", unit.read_text(), flags=re.MULTILINE)
    assert len(limits) == 1, limits
    assert connection_cap(int(limits[0])) == MAX_CONNECTIONS
