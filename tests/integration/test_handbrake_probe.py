"""Questions to the real HandBrakeCLI and ffprobe: version, presets, durations."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agent.handbrake.probe import HandBrakeUnavailable, available_presets, handbrake_version, media_duration
from tests.support.clips import make_clip


@pytest.fixture(scope="module")
def two_second_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "two-seconds.mkv", seconds=2)


def test_the_built_in_presets_are_listed() -> None:
    presets = available_presets("HandBrakeCLI")

    assert {"Fast 1080p30", "Very Fast 480p30", "HQ 1080p30 Surround"} <= presets
    assert "General" not in presets


def test_a_missing_handbrake_is_reported_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(HandBrakeUnavailable, match=r"not found \(install the handbrake-cli package\)"):
        available_presets(str(tmp_path / "HandBrakeCLI"))


def test_a_binary_that_lists_nothing_is_reported_as_unavailable() -> None:
    with pytest.raises(HandBrakeUnavailable, match="listed no presets"):
        available_presets("false")


def test_the_version_is_read() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", handbrake_version("HandBrakeCLI"))


def test_the_duration_of_a_clip(two_second_clip: Path) -> None:
    duration = media_duration(two_second_clip)

    assert duration is not None
    assert abs(duration - 2.0) <= 0.1


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"just some text\n", id="text"),
        pytest.param(os.urandom(100_000), id="random-bytes"),
        pytest.param(b"", id="empty"),
    ],
)
def test_a_file_that_is_not_media_has_no_duration(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "not-a-video.mkv"
    path.write_bytes(content)

    assert media_duration(path) is None


def test_a_missing_file_has_no_duration(tmp_path: Path) -> None:
    assert media_duration(tmp_path / "nothing-here.mkv") is None


def test_a_name_that_looks_like_an_option_is_still_a_file(tmp_path: Path, two_second_clip: Path) -> None:
    odd = tmp_path / "-i clip.mkv"
    odd.write_bytes(two_second_clip.read_bytes())

    assert media_duration(odd) == pytest.approx(2.0, abs=0.1)
