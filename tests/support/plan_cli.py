"""`hb2r plan` as an operator runs it: a config over a test's folder, clips placed in it, the command's
result, and a snapshot of every file to show that planning wrote nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


ADMIN_HASH = "$2b$12$EjNJyDau5vaz3Rw4eyFU3.CgVEnpVjQQ1gikg1nhkSP/nLG5YgekG"


def place(clip: Path, folder: Path, *rel_paths: str) -> None:
    for rel_path in rel_paths:
        target = folder / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(clip, target)


def write_config(
    tmp_path: Path,
    *,
    libraries: Iterable[str] = ("tv", "movies"),
    stable_after: str = "0s",
    with_users: bool = False,
) -> Path:
    """Write a config for tmp_path: sources tmp_path/<library>, archive, state; return its path.

    `stable_after: 0s` makes a file stable as soon as it is there: these tests copy finished
    clips and then look at the plan at once, so waiting for copies to settle would only hide
    the actions under test.
    """
    presets = {"tv": {"handbrake": "Very Fast 480p30", "container": "mkv"},
               "movies": {"handbrake": "Very Fast 720p30", "container": "mp4"}}
    outputs = {"tv": "TV", "movies": "Movies"}
    config: dict[str, Any] = {
        "version": 1,
        "paths": {"archive": str(tmp_path / "archive"), "state_dir": str(tmp_path / "state")},
        "libraries": [
            {
                "name": name,
                "source": str(tmp_path / name),
                "output": outputs[name],
                "preset": name,
                "stable_after": stable_after,
            }
            for name in libraries
        ],
        "presets": {name: presets[name] for name in libraries},
        "users": [{"name": "admin", "role": "admin", "password_hash": ADMIN_HASH}] if with_users else [],
    }
    (tmp_path / "archive").mkdir(exist_ok=True)
    (tmp_path / "home").mkdir(exist_ok=True)
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def run_plan(config: Path, *options: str, unprivileged: bool = False) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("HB2R_")}
    environment["HOME"] = str(config.parent / "home")  # so anything written there is seen
    command = [sys.executable, "-m", "agent", "plan", *options, str(config)]
    if unprivileged and os.geteuid() == 0:
        # Root ignores file modes; without these two capabilities it is bound by them.
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    finished = subprocess.run(
        command, capture_output=True, text=True, cwd=REPO, env=environment, timeout=120, check=False
    )
    assert "Traceback" not in finished.stderr + finished.stdout
    return finished


def snapshot(root: Path) -> dict[str, tuple[str, int, int]]:
    """Return every path under root with its kind, size and mtime."""
    found = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            kind = "dir" if os.path.isdir(path) and not os.path.islink(path) else "file"
            found[os.path.relpath(path, root)] = (kind, info.st_size if kind == "file" else 0, info.st_mtime_ns)
    return found


