"""probe_facts on clips made with ffmpeg, read by the real ffprobe: what rules will decide on,
and a clear reason, for that file alone, when a file cannot be read."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from agent.config.models import Preset
from agent.config.rules import Audio, Subtitles
from agent.facts import HdrKind
from agent.handbrake.command import encode_argv
from agent.handbrake.probe import ProbeFailed, probe_facts
from agent.handbrake.tracks import audio_options, subtitle_options
from tests.support.archive import PRESET, require_tools
from tests.support.media_clips import CLIPS


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


def streams_of(path: Path) -> list[tuple[str, str, int]]:
    """Return (type, language, forced) of each stream of a file, as ffprobe reads it."""
    answer = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return [
        (stream["codec_type"], stream.get("tags", {}).get("language", "und"), stream["disposition"]["forced"])
        for stream in json.loads(answer.stdout)["streams"]
    ]


def test_the_encode_keeps_exactly_the_tracks_the_settings_ask_for_and_burns_nothing(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    source = clips["multi_track"]
    facts = probe_facts(source)
    audio = Audio(languages=("original", "fre"))  # original: the first track's language, eng
    subtitles = Subtitles(languages=("eng",), forced_only=True)
    output = tmp_path / "out.mkv"
    argv = encode_argv(
        binary="HandBrakeCLI", preset=Preset(handbrake=PRESET), source=source, output=output,
        tracks=audio_options(audio, facts) + subtitle_options(subtitles, facts),
    )  # fmt: skip

    subprocess.run(argv, check=True, capture_output=True, timeout=300)

    kept = streams_of(output)
    assert [(kind, language) for kind, language, _ in kept] == [
        ("video", "und"), ("audio", "eng"), ("audio", "fre"), ("subtitle", "eng"),
    ]  # fmt: skip
    # Kept as a text stream (burned in, it would be in the picture, not a stream), and it is the
    # forced track: HandBrake 1.6.1 drops the forced flag, so its words tell which one it is.
    words = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(output), "-map", "0:s:0", "-f", "srt", "-"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    assert "Forced words" in words
