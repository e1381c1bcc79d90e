"""`hb2r notify-test CONFIG` as an operator runs it, against a real receiver on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.notify_receiver import port_nobody_listens_on, receiving

REPO = Path(__file__).resolve().parents[2]
SECRET = "s3cret-t0pic"


def notify_test(config: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent", "notify-test", str(config)],
        capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **env},
        timeout=60, check=False,
    )  # fmt: skip


def write_config(root: Path, notify: str) -> Path:
    (root / "archive").mkdir(exist_ok=True)
    config = root / "config.yaml"
    config.write_text(f"version: 1\npaths: {{archive: archive, state_dir: state}}\n{notify}")
    return config


def test_each_target_gets_one_test_message_and_its_result_is_printed(tmp_path: Path) -> None:
    with receiving() as receiver:
        down = f"json://127.0.0.1:{port_nobody_listens_on()}/{SECRET}"
        config = write_config(tmp_path, 'notify:\n  - url: "${GOOD_URL}"\n  - url: "${DOWN_URL}"\n')

        result = notify_test(config, {"GOOD_URL": receiver.json_url(SECRET), "DOWN_URL": down})

        titles = receiver.titles()
    assert result.returncode == 1  # one target failed
    assert result.stdout.splitlines() == [
        "notify[0] (json): sent",
        "notify[1] (json): FAILED: A Connection error occurred sending JSON notification to <redacted>.",
        "1 of 2 targets took the test message",
    ]
    assert titles == ["hb2r: test notification"]
    assert SECRET not in result.stdout + result.stderr


def test_every_target_taking_its_message_exits_0(tmp_path: Path) -> None:
    with receiving() as receiver:
        config = write_config(tmp_path, f"notify:\n  - url: {receiver.json_url()}\n")

        result = notify_test(config, {})

        assert receiver.titles() == ["hb2r: test notification"]
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == "1 of 1 target took the test message"


def test_no_target_is_an_error(tmp_path: Path) -> None:
    result = notify_test(write_config(tmp_path, ""), {})

    assert result.returncode == 1
    assert "no notify targets in the config" in result.stderr
