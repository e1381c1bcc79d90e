"""`hb2r ops ACTION -i INVENTORY`: run one of the deployment playbooks through ansible-runner.

Why through ansible-runner rather than `ansible-playbook`: its event stream gives one record
per task result, so the terminal shows a short line per host and task as it happens (and the
failure message when one fails) instead of Ansible's full output, and the exit code is the
playbook's. `ops` runs on the control machine from a source checkout: the playbooks are the
`playbooks/` folder next to the `agent` package unless `--playbooks DIR` says otherwise.
Ansible's own messages (warnings, a playbook that does not parse) are passed through.

The playbook's folder is ansible-runner's project folder, so Ansible runs there and reads an
`ansible.cfg` and `roles/` beside the playbooks; ansible-runner's artifacts go to a private
temp folder that is removed afterwards. When `ansible-playbook` is not on PATH (hb2r run from
a virtualenv that is not activated) the one beside the running Python is used.

Pure: `playbook_path`, `parse_extravars`, `event_lines`, `recap_lines`. Effects: `run_action`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ACTIONS = ("deploy", "backup", "rollback", "status", "logs", "restart", "stop")
DEFAULT_PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"
FAILED_STATUSES = frozenset({"failed", "timeout", "canceled"})
MESSAGE_LIMIT = 400
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RESULTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
    "runner_on_async_failed": "failed",
}
_RECAP = (
    ("ok", "ok"),
    ("changed", "changed"),
    ("unreachable", "dark"),
    ("failed", "failures"),
    ("skipped", "skipped"),
    ("rescued", "rescued"),
    ("ignored", "ignored"),
)


class OpsError(Exception):
    """The playbook cannot be run; the message says why. Nothing was run."""


def playbook_path(action: str, playbooks: Path) -> Path:
    """Given an action and the playbooks folder, return the absolute path of ACTION.yml.

    Raise OpsError if the action is unknown or its playbook is missing.
    """
    if action not in ACTIONS:
        raise OpsError(f"unknown action {action!r} (choose from {', '.join(ACTIONS)})")
    path = (playbooks / f"{action}.yml").absolute()
    if not path.is_file():
        raise OpsError(
            f"there is no playbook {path}; hb2r ops runs from a source checkout on the control machine "
            "(or give --playbooks DIR)"
        )
    return path


def parse_extravars(pairs: Sequence[str]) -> dict[str, str]:
    """Given `-e KEY=VALUE` arguments, return them as a dict (a later KEY wins); raise OpsError if one lacks KEY=."""
    extravars: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise OpsError(f"-e {pair!r}: give KEY=VALUE")
        extravars[key.strip()] = value
    return extravars


def event_lines(event: Mapping[str, Any]) -> list[str]:
    """Given one ansible-runner event, return the lines to show for it (none for most events)."""
    name = event.get("event")
    data = event.get("event_data") or {}
    if name in _RESULTS:
        return [_result_line(str(name), data), *_shown(str(name), data)]
    if name == "playbook_on_play_start":
        return [f"PLAY {data.get('play') or data.get('name') or ''}".rstrip()]
    if name == "playbook_on_no_hosts_matched":
        return ["  no hosts matched"]
    if name == "playbook_on_stats":
        return recap_lines(data)
    if name in ("verbose", "warning", "error", "deprecated"):  # Ansible's own messages
        text = _ANSI.sub("", str(event.get("stdout") or ""))
        return [f"  {line.rstrip()}" for line in text.splitlines() if line.strip()]
    return []


def recap_lines(stats: Mapping[str, Any]) -> list[str]:
    """Given the data of a playbook_on_stats event, return the recap: one line per host."""
    hosts = sorted({host for _, key in _RECAP for host in (stats.get(key) or {})})
    if not hosts:
        return ["RECAP: no hosts"]
    width = max(len(host) for host in hosts)
    lines = ["RECAP"]
    for host in hosts:
        counts = " ".join(f"{label}={int((stats.get(key) or {}).get(host, 0))}" for label, key in _RECAP)
        lines.append(f"  {host:<{width}}  {counts}")
    return lines


def exit_code(rc: int | None, status: str) -> int:
    """Given ansible-runner's rc and status, return the exit code: the playbook's, never 0 for a failed run."""
    if rc:
        return rc
    return 1 if rc is None or status in FAILED_STATUSES else 0


def run_action(
    action: str,
    inventory: Path,
    *,
    playbooks: Path = DEFAULT_PLAYBOOKS,
    extravars: Mapping[str, str] | None = None,
    check: bool = False,
    write: Callable[[str], None] | None = None,
) -> int:
    """Given an action and an inventory file, run ACTION.yml; return the exit code.

    A line per task result, then the recap, goes to write (default: standard output, flushed
    at once). Raise OpsError, before anything runs, if the action, its playbook or the
    inventory is missing, or ansible-playbook cannot be found.
    """
    write = write or _print
    playbook = playbook_path(action, playbooks)
    inventory = inventory.absolute()
    if not inventory.exists():
        raise OpsError(f"inventory {inventory} does not exist")
    binary = _ansible_playbook()

    try:
        import ansible_runner
    except ImportError:
        raise OpsError("ansible-runner is not installed; on the control machine: pip install 'hb2r[ops]'") from None

    def on_event(event: dict[str, Any]) -> bool:
        for line in event_lines(event):
            write(line)
        return False  # the artifacts folder is thrown away: do not keep events there

    path = os.pathsep.join([str(Path(binary).parent), os.environ.get("PATH", os.defpath)])
    with tempfile.TemporaryDirectory(prefix="hb2r-ops-") as private:
        runner = ansible_runner.run(
            private_data_dir=private,
            project_dir=str(playbook.parent),
            playbook=str(playbook),
            inventory=str(inventory),
            extravars=dict(extravars or {}),
            cmdline="--check" if check else None,
            envvars={"PATH": path},
            quiet=True,
            event_handler=on_event,
        )
        status, rc = str(runner.status), runner.rc
    code = exit_code(rc, status)
    mode = " (check mode)" if check else ""
    write(f"hb2r ops {action}{mode}: {status}, exit code {code}")
    return code


def _print(line: str) -> None:
    print(line, flush=True)


def _ansible_playbook() -> str:
    """Return the ansible-playbook to run; raise OpsError if there is none."""
    found = shutil.which("ansible-playbook")
    if found is not None:
        return found
    beside = Path(sys.executable).parent / "ansible-playbook"  # not resolved: a virtualenv's bin/
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    raise OpsError("ansible-playbook not found; install ansible-core on the control machine")


def _result_line(name: str, data: Mapping[str, Any]) -> str:
    result = data.get("res") or {}
    status = _RESULTS[name]
    if status == "ok" and isinstance(result, Mapping) and result.get("changed"):
        status = "changed"
    if status == "failed" and data.get("ignore_errors"):
        status = "failed (ignored)"
    line = f"  {status:<11} {data.get('host') or '?'}: {data.get('task') or data.get('task_action') or '?'}"
    if status in ("failed", "unreachable"):
        message = _message(result)
        if message:
            line += f": {message}"
    return line


def _shown(name: str, data: Mapping[str, Any]) -> list[str]:
    """Return what a `debug` task shows (status.yml's /health body, logs.yml's lines), indented."""
    result = data.get("res")
    is_debug = str(data.get("task_action", "")).endswith("debug")
    if name != "runner_on_ok" or not is_debug or not isinstance(result, Mapping):
        return []
    shown = {key: value for key, value in result.items() if not key.startswith("_") and key != "changed"}
    if not shown:
        return []
    value = shown["msg"] if set(shown) == {"msg"} else shown
    text = value if isinstance(value, str) else json.dumps(value, indent=2, default=str)
    return [f"      {line}" for line in text.splitlines()]


def _message(result: Any) -> str:
    """Return a task result's failure message, on one line."""
    if not isinstance(result, Mapping):
        return _one_line(str(result))
    parts = [str(result["msg"])] if result.get("msg") else []
    for key in ("stderr", "reason"):
        if result.get(key) and str(result[key]) not in parts:
            parts.append(str(result[key]))
    if not parts and result.get("rc") is not None:
        parts.append(f"exit code {result['rc']}")
    return _one_line(": ".join(parts))


def _one_line(text: str) -> str:
    flat = " ".join(_ANSI.sub("", text).split())
    return flat if len(flat) <= MESSAGE_LIMIT else flat[: MESSAGE_LIMIT - 1] + "…"
