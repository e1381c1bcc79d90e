"""HandBrakeCLI command lines as data, and the preset list HandBrakeCLI prints, read back.

The argv rows are what an operator's preset turns into; the preset-list rows come from a
real `HandBrakeCLI --preset-list` (1.6.1) recorded in tests/fixtures/handbrake/.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from agent.config.models import Preset
from agent.handbrake import command, progress
from agent.handbrake.command import encode_argv, parse_preset_list, preset_list_argv

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "handbrake"
SOURCE = Path("/mnt/tv/Show Name/-S01E01 (1080p).mkv")
OUTPUT = Path("/mnt/archive/.hb2r-partial/42.mkv")


@pytest.mark.parametrize(
    ("preset", "expected_after_preset_name"),
    [
        pytest.param(Preset(handbrake="Fast 1080p30"), ("--format", "av_mkv"), id="mkv-is-the-default-container"),
        pytest.param(Preset(handbrake="Fast 1080p30", container="mkv"), ("--format", "av_mkv"), id="mkv"),
        pytest.param(Preset(handbrake="Fast 1080p30", container="mp4"), ("--format", "av_mp4"), id="mp4"),
        pytest.param(Preset(handbrake="VP9 MKV 1080p30", container="webm"), ("--format", "av_webm"), id="webm"),
        pytest.param(
            Preset(handbrake="My Preset", import_file=Path("/etc/hb2r/my presets.json")),
            ("--preset-import-file", "/etc/hb2r/my presets.json", "--format", "av_mkv"),
            id="import-file-comes-right-after-the-preset-name",
        ),
        pytest.param(
            Preset(handbrake="Fast 1080p30", container="mp4", args=("--encoder-preset", "slow", "--quality=20")),
            ("--format", "av_mp4", "--encoder-preset", "slow", "--quality=20"),
            id="extra-args-come-last-in-their-order-so-they-override-the-preset",
        ),
        pytest.param(
            Preset(
                handbrake="My Preset", container="webm", import_file=Path("/p.json"), args=("--all-audio", "-e", "x264")
            ),
            ("--preset-import-file", "/p.json", "--format", "av_webm", "--all-audio", "-e", "x264"),
            id="import-file-container-and-args-together",
        ),
    ],
)
def test_encode_argv_is_hb2r_options_then_the_preset(
    preset: Preset, expected_after_preset_name: tuple[str, ...]
) -> None:
    argv = encode_argv(binary="/usr/bin/HandBrakeCLI", preset=preset, source=SOURCE, output=OUTPUT)

    assert argv == (
        "/usr/bin/HandBrakeCLI",
        "--json",
        "--input",
        "/mnt/tv/Show Name/-S01E01 (1080p).mkv",
        "--output",
        "/mnt/archive/.hb2r-partial/42.mkv",
        "--preset",
        preset.handbrake,
        *expected_after_preset_name,
    )


def test_paths_with_spaces_and_dashes_stay_single_arguments() -> None:
    argv = encode_argv(binary="HandBrakeCLI", preset=Preset(handbrake="Fast 1080p30"), source=SOURCE, output=OUTPUT)

    assert argv[argv.index("--input") + 1] == str(SOURCE)
    assert all(isinstance(arg, str) for arg in argv)


def test_the_same_preset_always_gives_the_same_argv() -> None:
    preset = Preset(handbrake="Fast 1080p30", args=("--quality", "22"))

    first = encode_argv(binary="HandBrakeCLI", preset=preset, source=SOURCE, output=OUTPUT)
    second = encode_argv(binary="HandBrakeCLI", preset=preset, source=SOURCE, output=OUTPUT)

    assert first == second


def test_preset_list_argv() -> None:
    assert preset_list_argv("/opt/hb/HandBrakeCLI") == ("/opt/hb/HandBrakeCLI", "--preset-list")


@pytest.mark.parametrize("module", [command, progress], ids=lambda module: module.__name__)
def test_pure_modules_import_nothing_that_touches_the_world(module: object) -> None:
    tree = ast.parse(Path(str(getattr(module, "__file__", ""))).read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}

    assert imported.isdisjoint({"subprocess", "psutil", "sqlite3", "aiohttp", "time", "asyncio", "os"})


def test_the_recorded_preset_list_gives_every_built_in_preset_and_nothing_else() -> None:
    names = parse_preset_list((FIXTURES / "preset-list.txt").read_text())

    assert {"Fast 1080p30", "Very Fast 480p30", "HQ 1080p30 Surround", "VP9 MKV 1080p30", "CLI Default"} <= names
    assert len(names) == 90  # HandBrake 1.6.1's built-ins, one per 4-space-indented line of the recording
    assert not {"General", "General/", "Matroska/", "CLI Defaults/"} & names  # folders are not presets
    assert not {name for name in names if name.endswith((".", ","))}  # description lines are not presets
    assert not {name for name in names if "libhb" in name or "HandBrake has exited" in name or "nvidia" in name}


def test_an_imported_preset_outside_any_folder_is_listed_too() -> None:
    names = parse_preset_list((FIXTURES / "preset-list-with-import.txt").read_text())

    assert "hb2r Tiny" in names
    assert names == parse_preset_list((FIXTURES / "preset-list.txt").read_text()) | {"hb2r Tiny"}


def test_nested_folders_and_descriptionless_presets() -> None:
    text = (
        "[10:00:00] hb_init: starting libhb thread\n"
        "Cannot load libnvidia-encode.so.1\n"
        "Outer/\n"
        "    Inner/\n"
        "        Deep Preset\n"
        "            Its description, wrapped\n"
        "            over two lines/\n"
        "        Plain Preset\n"
        "    Outer Preset\n"
        "Top Level Import\n"
        "    A description\n"
        "HandBrake has exited.\n"
    )

    assert parse_preset_list(text) == {"Deep Preset", "Plain Preset", "Outer Preset", "Top Level Import"}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("HandBrake has exited.\n", id="only-the-goodbye"),
        pytest.param("Unknown argument: --preset-lsit\nSyntax: HandBrakeCLI [options] -i <source>\n", id="usage"),
        pytest.param("\x00\ufffd  \t\n   odd indent\n      /\n", id="garbage"),
    ],
)
def test_text_that_is_not_a_preset_list_gives_no_names(text: str) -> None:
    assert parse_preset_list(text) == frozenset()
