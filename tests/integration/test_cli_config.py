"""The config commands of the real `hb2r` command line, run as a process.

`hb2r validate`, `validate --show`, `schema` and `hash-password` are what an operator runs
by hand or from a deploy script, so these tests look only at what such a person or script
sees: the exit code, standard output and standard error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import bcrypt
import pytest
import yaml

from tests.support.cli import hb2r as run_hb2r

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
HASH = "$2b$12$EjNJyDau5vaz3Rw4eyFU3.CgVEnpVjQQ1gikg1nhkSP/nLG5YgekG"

VALID = f"""\
version: 1
paths:
  archive: archive
  state_dir: state
libraries:
  - name: tv
    source: tv
    output: TV
    preset: tv
  - name: movies
    source: movies
    output: Movies
    preset: tv
presets:
  tv: {{handbrake: Fast 1080p30}}
limits:
  windows: ["22:00-07:00"]
users:
  - name: admin
    role: admin
    password_hash: "{HASH}"
"""


def hb2r(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `hb2r ARGS` in a clean environment (none of the config's variables set)."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    return run_hb2r(*args, stdin=stdin, environment={**clean, **(env or {})})


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A valid config whose archive and sources exist, so it validates without warnings."""
    for name in ("archive", "tv", "movies"):
        (tmp_path / name).mkdir()
    path = tmp_path / "config.yaml"
    path.write_text(VALID)
    return path


# --- validate -----------------------------------------------------------------------------


def test_validate_a_good_config_prints_a_one_line_summary(config: Path) -> None:
    result = hb2r("validate", str(config))

    assert result.returncode == 0
    assert result.stderr == ""
    assert result.stdout == (
        f"{config}: valid: 2 libraries (tv, movies), 1 preset, 1 user; archive {config.parent / 'archive'}\n"
    )


def test_validate_reads_the_config_named_by_hb2r_config(config: Path) -> None:
    result = hb2r("validate", env={"HB2R_CONFIG": str(config)})

    assert result.returncode == 0
    assert result.stdout.startswith(f"{config}: valid: 2 libraries")


def test_validate_a_bad_config_lists_every_problem_on_stderr_and_exits_1(config: Path) -> None:
    config.write_text(VALID.replace("windows:", "max_job: 2\n  windows:").replace("role: admin", "role: root"))

    result = hb2r("validate", str(config))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {config}:17: at 'limits.max_job': unknown key 'max_job'; did you mean 'max_jobs'?",
        f"error: {config}:21: at 'users[0].role': input should be 'admin' or 'user', got 'root'",
        f"{config}: 2 problems; nothing was done.",
    ]


def test_validate_reports_problems_found_after_the_values_are_read(config: Path) -> None:
    config.write_text(VALID.replace("preset: tv\n  - name: movies", "preset: tvv\n  - name: movies"))

    result = hb2r("validate", str(config))

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"error: {config}:9: at 'libraries[0].preset': preset 'tvv' is not defined (known: tv)",
        f"{config}: 1 problem; nothing was done.",
    ]


def test_validate_reports_a_misspelt_key_and_an_undefined_preset_in_one_run(config: Path) -> None:
    config.write_text(
        VALID.replace("windows:", "max_job: 2\n  windows:").replace(
            "preset: tv\n  - name: movies", "preset: tvv\n  - name: movies"
        )
    )

    result = hb2r("validate", str(config))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: {config}:17: at 'limits.max_job': unknown key 'max_job'; did you mean 'max_jobs'?",
        f"error: {config}:9: at 'libraries[0].preset': preset 'tvv' is not defined (known: tv)",
        f"{config}: 2 problems; nothing was done.",
    ]


@pytest.mark.parametrize(
    ("content", "where"),
    [
        pytest.param("version: 1\npaths: [\n", "config.yaml:3:", id="broken-yaml"),
        pytest.param("version: 1\npaths:\n  archive: !!int abc\n", "config.yaml:3:", id="a-bad-yaml-tag"),
        pytest.param("version: 1\npaths:\n  archive: x\nscan: {interval: .inf}\n", "config.yaml:4:", id="infinity"),
        pytest.param(b"version: 1\n\xff\xfe\n", "config.yaml:2:", id="not-utf-8"),
    ],
)
def test_validate_never_shows_a_traceback(tmp_path: Path, content: str | bytes, where: str) -> None:
    path = tmp_path / "config.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)

    result = hb2r("validate", str(path))

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {tmp_path}/{where}")


def test_validate_a_missing_file_exits_1(tmp_path: Path) -> None:
    result = hb2r("validate", str(tmp_path / "nowhere.yaml"))

    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == f"error: {tmp_path}/nowhere.yaml: no such file (see examples/config.yaml)"


def test_validate_counts_all_fifty_problems(tmp_path: Path) -> None:
    text = "version: 1\npaths: {archive: archive}\npresets: {tv: {handbrake: x}}\nlibraries:\n"
    text += "".join(
        f"  - {{name: l{n}, source: s{n}, output: O{n}, preset: tv, stable_after: never}}\n" for n in range(50)
    )
    path = tmp_path / "config.yaml"
    path.write_text(text)

    result = hb2r("validate", str(path))

    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1
    assert len(errors) == 50
    assert len({line.split(":")[2] for line in errors}) == 50
    assert result.stderr.splitlines()[-1] == f"{path}: 50 problems; nothing was done."


def test_validate_show_prints_the_effective_config_without_password_hashes(config: Path) -> None:
    result = hb2r("validate", "--show", str(config))

    assert result.returncode == 0
    assert HASH not in result.stdout
    assert "$2b$" not in result.stdout
    shown = yaml.safe_load(result.stdout)
    assert shown["users"] == [{"name": "admin", "role": "admin", "password_hash": "<redacted>"}]
    assert shown["paths"]["archive"] == str(config.parent / "archive")
    assert shown["libraries"][0]["stable_after"] == "1m"
    assert shown["limits"]["min_free_disk"] == "5GiB"
    assert shown["limits"]["windows"] == ["22:00-07:00"]


def test_validate_show_expands_variables_and_its_output_validates_as_the_same_config(tmp_path: Path) -> None:
    (tmp_path / "tv").mkdir()
    (tmp_path / "archive").mkdir()
    source = tmp_path / "config.yaml"
    source.write_text(
        "version: 1\npaths:\n  archive: ${ARCHIVE}\n  state_dir: state\n"
        "libraries:\n  - {name: tv, source: tv, output: TV, preset: tv, stable_after: 90s}\n"
        "presets:\n  tv: {handbrake: Fast 1080p30, args: [--encoder, x265]}\n"
        "limits:\n  cpu_percent: ${CPU_LIMIT:-70}\n  min_free_memory: 1536MiB\n"
    )
    env = {"ARCHIVE": str(tmp_path / "archive")}

    first = hb2r("validate", "--show", str(source), env=env)
    effective = tmp_path / "effective.yaml"
    effective.write_text(first.stdout)
    second = hb2r("validate", "--show", str(effective))

    assert first.returncode == 0
    assert "${" not in first.stdout
    assert yaml.safe_load(first.stdout)["limits"]["cpu_percent"] == 70
    assert second.returncode == 0
    assert second.stdout == first.stdout


# --- schema -------------------------------------------------------------------------------


def test_schema_is_json_an_editor_can_use() -> None:
    result = hb2r("schema")

    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert {"version", "paths", "libraries", "presets", "limits", "users"} <= set(schema["properties"])
    assert schema["required"] == ["version", "paths"]
    library = schema["$defs"]["Library"]
    assert library["additionalProperties"] is False
    assert set(library["required"]) == {"name", "source", "output", "preset"}
    assert all("description" in field for field in library["properties"].values())
    assert schema["$defs"]["Limits"]["additionalProperties"] is False


# --- hash-password ------------------------------------------------------------------------


def test_hash_password_prints_a_hash_bcrypt_accepts() -> None:
    result = hb2r("hash-password", "--stdin", "--rounds", "4", stdin="correct horse battery staple\n")

    assert result.returncode == 0
    hashed = result.stdout.strip()
    assert result.stdout == hashed + "\n"
    assert hashed.startswith("$2b$04$")
    assert bcrypt.checkpw(b"correct horse battery staple", hashed.encode())
    assert not bcrypt.checkpw(b"correct horse battery stapler", hashed.encode())


def test_a_hashed_password_is_accepted_in_the_config(config: Path) -> None:
    hashed = hb2r("hash-password", "--stdin", "--rounds", "4", stdin="s3cret\n").stdout.strip()
    config.write_text(VALID.replace(HASH, hashed))

    assert hb2r("validate", str(config)).returncode == 0


def test_a_72_byte_password_is_hashed() -> None:
    password = "é" * 36  # 36 characters, 72 bytes in UTF-8

    result = hb2r("hash-password", "--stdin", "--rounds", "4", stdin=password + "\n")

    assert result.returncode == 0
    assert bcrypt.checkpw(password.encode(), result.stdout.strip().encode())


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("x" * 73, id="73-ascii-characters"),
        pytest.param("é" * 37, id="37-characters-that-are-74-bytes"),
    ],
)
def test_a_password_longer_than_72_bytes_is_refused_not_cut(password: str) -> None:
    result = hb2r("hash-password", "--stdin", "--rounds", "4", stdin=password + "\n")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "72" in result.stderr
    assert "bytes" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_empty_password_is_refused() -> None:
    result = hb2r("hash-password", "--stdin", "--rounds", "4", stdin="\n")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "error: the password is empty\n"


# --- the shipped examples -----------------------------------------------------------------


def test_the_documented_example_config_is_valid() -> None:
    result = hb2r("validate", str(EXAMPLES / "config.yaml"))

    assert result.returncode == 0, result.stderr
    assert "valid: 2 libraries (tv, movies), 2 presets, 1 user" in result.stdout
    assert "error" not in result.stderr


def test_the_demo_config_is_valid() -> None:
    result = hb2r("validate", str(EXAMPLES / "demo.yaml"))

    assert result.returncode == 0, result.stderr
    assert f"archive {REPO / 'demo' / 'archive'}" in result.stdout


def test_the_demo_config_only_warns_before_the_demo_clips_are_made(tmp_path: Path) -> None:
    examples = tmp_path / "examples"
    examples.mkdir()
    shutil.copy(EXAMPLES / "demo.yaml", examples / "demo.yaml")

    result = hb2r("validate", str(examples / "demo.yaml"))

    assert result.returncode == 0, result.stderr
    warnings = result.stderr.splitlines()
    assert warnings
    assert all(line.startswith("warning: ") and "does not exist" in line for line in warnings)
    assert any(f"'{tmp_path}/demo/tv'" in line for line in warnings)
