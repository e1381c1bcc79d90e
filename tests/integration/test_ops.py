"""`hb2r ops`: real ansible-runner runs of tiny playbooks against localhost (connection local).

The deployment playbooks are written elsewhere; these tests make their own in a temp folder
and look at what an operator sees: a line per task result as it happens, the recap, the
exit code. One playbook waits for a file the test makes only after it has read the first
task's line, which shows the lines are streamed, not printed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.ops import event_lines, exit_code, parse_extravars, recap_lines
from tests.support.cli import hb2r as run_hb2r

REPO = Path(__file__).resolve().parents[2]

DEPLOY = """\
- name: Deploy hb2r
  hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug: {msg: "hello {{ who | default('nobody') }}"}
    - name: Wait for the test
      ansible.builtin.wait_for: {path: "{{ go_file }}", timeout: 60}
    - name: Change something
      ansible.builtin.command: "true"
      changed_when: true
      check_mode: false
    - name: Only with extra vars
      ansible.builtin.fail: {msg: "asked to fail"}
      when: boom | default('no') == 'yes'
    - name: Only in check mode
      ansible.builtin.fail: {msg: "refused in check mode"}
      when: ansible_check_mode
"""

STOP = """\
- name: Stop hb2r
  hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug: {msg: hello}
    - name: Fail on purpose
      ansible.builtin.fail: {msg: "this failed on purpose"}
    - name: Never reached
      ansible.builtin.debug: {msg: unreachable}
"""


@pytest.fixture
def playbooks(tmp_path: Path) -> Path:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "deploy.yml").write_text(DEPLOY)
    (folder / "stop.yml").write_text(STOP)
    return folder


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.ini"
    path.write_text('localhost ansible_connection=local ansible_python_interpreter="{{ ansible_playbook_python }}"\n')
    return path


def environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith(("HB2R_", "ANSIBLE_"))}


def hb2r(*arguments: str) -> subprocess.CompletedProcess[str]:
    return run_hb2r(*arguments, environment=environment(), timeout=300)


@pytest.fixture
def go_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "go"
    yield path
    path.touch()  # never leave a playbook waiting


def test_a_good_playbook_streams_a_line_per_task_and_exits_0(playbooks: Path, inventory: Path, go_file: Path) -> None:
    extra = ["-e", "who=operator", "-e", f"go_file={go_file}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "ops", "deploy", "-i", str(inventory), "--playbooks", str(playbooks), *extra],
        cwd=REPO,
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:  # blocks per line; the playbook waits for go_file meanwhile
            lines.append(line.rstrip("\n"))
            if "hello operator" in line:  # the debug message, shown under its task line
                break
        assert process.poll() is None  # the line came while the playbook was still running
        go_file.touch()
        rest, errors = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines += rest.splitlines()

    assert process.returncode == 0, errors
    assert lines == [
        "PLAY Deploy hb2r",
        "  ok          localhost: Say hello",
        "      hello operator",  # what a debug task shows is the point of status.yml and logs.yml
        "  ok          localhost: Wait for the test",
        "  changed     localhost: Change something",
        "  skipped     localhost: Only with extra vars",
        "  skipped     localhost: Only in check mode",
        "RECAP",
        "  localhost  ok=3 changed=1 unreachable=0 failed=0 skipped=2 rescued=0 ignored=0",
        "hb2r ops deploy: successful, exit code 0",
    ]


def test_a_failing_playbook_shows_the_failure_and_exits_non_zero(playbooks: Path, inventory: Path) -> None:
    finished = hb2r("ops", "stop", "-i", str(inventory), "--playbooks", str(playbooks))

    assert finished.returncode == 2, finished.stderr
    assert finished.stdout.splitlines() == [
        "PLAY Stop hb2r",
        "  ok          localhost: Say hello",
        "      hello",
        "  failed      localhost: Fail on purpose: this failed on purpose",
        "RECAP",
        "  localhost  ok=1 changed=0 unreachable=0 failed=1 skipped=0 rescued=0 ignored=0",
        "hb2r ops stop: failed, exit code 2",
    ]


@pytest.mark.parametrize(
    "options, failure",
    [
        (["-e", "boom=yes"], "  failed      localhost: Only with extra vars: asked to fail"),
        (["--check"], "  failed      localhost: Only in check mode: refused in check mode"),
    ],
    ids=["extra-vars", "check"],
)
def test_extra_vars_and_check_mode_reach_the_playbook(
    playbooks: Path, inventory: Path, go_file: Path, options: list[str], failure: str
) -> None:
    go_file.touch()

    finished = hb2r(
        "ops", "deploy", "-i", str(inventory), "--playbooks", str(playbooks), "-e", f"go_file={go_file}", *options
    )

    assert finished.returncode == 2, finished.stderr
    assert failure in finished.stdout.splitlines()


def test_a_playbook_ansible_cannot_parse_shows_ansibles_message(playbooks: Path, inventory: Path) -> None:
    (playbooks / "status.yml").write_text("- hosts: all\n  tasks:\n    - name: x\n      no.such.module: {}\n")

    finished = hb2r("ops", "status", "-i", str(inventory), "--playbooks", str(playbooks))

    assert finished.returncode != 0
    assert "no.such.module" in finished.stdout
    assert finished.stdout.splitlines()[-1] == f"hb2r ops status: failed, exit code {finished.returncode}"


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["deploy", "-i", "{tmp}/missing.ini"], "error: inventory {tmp}/missing.ini does not exist; nothing was run\n"),
        (
            ["nuke", "-i", "{inventory}"],
            "error: unknown action 'nuke' (choose from deploy, backup, rollback, status, logs, restart, stop); "
            "nothing was run\n",
        ),
        (
            ["rollback", "-i", "{inventory}"],
            "error: there is no playbook {playbooks}/rollback.yml; hb2r ops runs from a source checkout on the "
            "control machine (or give --playbooks DIR); nothing was run\n",
        ),
        (["deploy", "-i", "{inventory}", "-e", "who"], "error: -e 'who': give KEY=VALUE; nothing was run\n"),
    ],
    ids=["missing-inventory", "unknown-action", "missing-playbook", "bad-extra-var"],
)
def test_errors_exit_1_before_anything_runs(
    playbooks: Path, inventory: Path, tmp_path: Path, arguments: list[str], message: str
) -> None:
    names = {"tmp": tmp_path, "inventory": inventory, "playbooks": playbooks}
    filled = [argument.format(**names) for argument in arguments]

    finished = hb2r("ops", *filled, "--playbooks", str(playbooks))

    assert finished.returncode == 1
    assert finished.stderr == message.format(**names)
    assert finished.stdout == ""


# --- the pure parts -----------------------------------------------------------------------


def test_event_lines_describe_results_and_skip_the_rest() -> None:
    def event(name: str, **data: object) -> dict[str, object]:
        return {"event": name, "event_data": data}

    assert event_lines(event("runner_on_start", host="h", task="t")) == []
    assert event_lines(event("runner_on_ok", host="h", task="t", res={"changed": True})) == ["  changed     h: t"]
    assert event_lines(event("runner_on_unreachable", host="h", task="t", res={"msg": "ssh:\n  refused"})) == [
        "  unreachable h: t: ssh: refused"
    ]
    assert event_lines(
        event("runner_on_failed", host="h", task="t", ignore_errors=True, res={"msg": "non-zero", "stderr": "boom"})
    ) == ["  failed (ignored) h: t"]
    assert event_lines(event("runner_on_failed", host="h", task="t", res={"rc": 3})) == [
        "  failed      h: t: exit code 3"
    ]
    assert event_lines({"event": "verbose", "stdout": "\x1b[0;35m[WARNING]: careful\x1b[0m"}) == [
        "  [WARNING]: careful"
    ]


def test_recap_and_exit_code() -> None:
    stats = {"ok": {"b": 2, "a": 1}, "failures": {"b": 1}, "dark": {}, "changed": {"a": 1}}
    assert recap_lines(stats) == [
        "RECAP",
        "  a  ok=1 changed=1 unreachable=0 failed=0 skipped=0 rescued=0 ignored=0",
        "  b  ok=2 changed=0 unreachable=0 failed=1 skipped=0 rescued=0 ignored=0",
    ]
    assert recap_lines({}) == ["RECAP: no hosts"]
    assert (exit_code(0, "successful"), exit_code(2, "failed"), exit_code(0, "timeout"), exit_code(None, "")) == (
        0,
        2,
        1,
        1,
    )
    assert parse_extravars(["a=1", "b==2", "a=3"]) == {"a": "3", "b": "=2"}
