"""probe_facts on clips made with ffmpeg, read by the real ffprobe: what rules will decide on,
and a clear reason, for that file alone, when a file cannot be read."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from agent.facts import HdrKind
from agent.handbrake.probe import ProbeFailed, probe_facts
from tests.integration.archive_support import require_tools
from tests.integration.media_clips import CLIPS


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require_tools()
    folder = tmp_path_factory.mktemp("media")
    return {name: make(folder / f"{name}.mkv") for name, make in CLIPS.items()}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_each_clip_is_described_as_made(clips: dict[str, Path]) -> None:
    before = {name: digest(path) for name, path in clips.items()}

    facts = {name: probe_facts(path) for name, path in clips.items()}

    assert {name: (found.video.codec if found.video else None) for name, found in facts.items()} == {
        "hevc": "hevc", "h264_low": "h264", "hdr10": "hevc", "multi_track": "h264",
    }  # fmt: skip
    hdr10 = facts["hdr10"].video
    assert hdr10 is not None and (hdr10.hdr, hdr10.bit_depth) == (HdrKind.HDR10, 10)
    assert all(found.video and found.video.hdr is HdrKind.SDR for name, found in facts.items() if name != "hdr10")
    assert [track.language for track in facts["multi_track"].audio] == ["eng", "jpn", "fre"]
    assert [(track.language, track.forced) for track in facts["multi_track"].subtitles] == [
        ("eng", True), ("eng", False), ("spa", False),
    ]  # fmt: skip
    assert facts["hevc"].size == clips["hevc"].stat().st_size
    assert {name: digest(path) for name, path in clips.items()} == before  # sources only read


def test_a_corrupt_file_fails_with_a_clear_reason_of_its_own(tmp_path: Path, clips: dict[str, Path]) -> None:
    corrupt = tmp_path / "corrupt.mkv"
    corrupt.write_bytes(b"\x1aE\xdf\xa3" + b"garbage " * 4000)  # a Matroska magic number, then nothing valid

    with pytest.raises(ProbeFailed, match=r"ffprobe cannot read it \(exit code 1\): .*Invalid data"):
        probe_facts(corrupt)
    assert probe_facts(clips["hevc"]).video is not None  # the next file is read as before


def test_a_missing_ffprobe_is_named(tmp_path: Path, clips: dict[str, Path]) -> None:
    with pytest.raises(ProbeFailed, match="no-such-ffprobe could not run"):
        probe_facts(clips["hevc"], ffprobe=str(tmp_path / "no-such-ffprobe"))
