"""audio_options / subtitle_options: a library's `audio:` and `subtitles:` as HandBrakeCLI options,
on the facts of the recorded multi-track clip (audio eng, jpn 5.1, fre; subtitles eng forced,
eng, spa), and without facts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config.models import Preset
from agent.config.rules import Audio, Subtitles
from agent.facts import MediaFacts, parse_facts
from agent.handbrake.command import encode_argv
from agent.handbrake.tracks import audio_options, subtitle_options
from agent.identity import preset_identity, with_tracks

RECORDED = Path(__file__).resolve().parents[2] / "fixtures" / "ffprobe"
MULTI = parse_facts((RECORDED / "multi_track.streams.json").read_text())
SILENT = parse_facts((RECORDED / "hevc.streams.json").read_text())  # no audio, no subtitles


@pytest.mark.parametrize(
    "settings, facts, expected",
    [
        pytest.param({}, MULTI, (), id="defaults-leave-the-preset-to-choose"),
        pytest.param({"languages": ["jpn", "fre"]}, MULTI,
                     ("--audio", "2,3", "--aencoder", "copy", "--audio-fallback", "av_aac"), id="all-matching"),
        pytest.param({"languages": ["jpn", "fre"], "keep": "first"}, MULTI,
                     ("--audio", "2", "--aencoder", "copy", "--audio-fallback", "av_aac"), id="first-matching"),
        pytest.param({"languages": ["original", "fre"]}, MULTI,
                     ("--audio", "1,3", "--aencoder", "copy", "--audio-fallback", "av_aac"),
                     id="original-is-the-first-tracks-language"),
        pytest.param({"languages": ["deu"]}, MULTI,
                     ("--audio", "1", "--aencoder", "copy", "--audio-fallback", "av_aac"),
                     id="none-matching-falls-back-to-the-first-never-no-audio"),
        pytest.param({"languages": ["deu"], "fallback": "none"}, MULTI, ("--audio", "none"),
                     id="no-fallback-when-asked"),
        pytest.param({"languages": ["eng"]}, SILENT, ("--audio", "none"), id="a-file-without-audio"),
        pytest.param({"languages": ["eng"], "codec": "opus"}, MULTI, ("--audio", "1", "--aencoder", "opus"),
                     id="an-encoder-instead-of-passthrough"),
        pytest.param({"codec": "aac"}, MULTI, ("--aencoder", "av_aac"), id="only-the-codec"),
        pytest.param({"languages": ["eng", "original"]}, None,
                     ("--audio-lang-list", "eng", "--all-audio", "--aencoder", "copy", "--audio-fallback", "av_aac"),
                     id="unknown-facts-pass-the-list-to-handbrake"),
        pytest.param({"languages": ["jpn"], "keep": "first", "codec": "ac3"}, None,
                     ("--audio-lang-list", "jpn", "--first-audio", "--aencoder", "ac3"), id="unknown-facts-first"),
    ],
)  # fmt: skip
def test_audio(settings: dict[str, Any], facts: MediaFacts | None, expected: tuple[str, ...]) -> None:
    assert audio_options(Audio.model_validate(settings), facts) == expected


@pytest.mark.parametrize(
    "settings, facts, expected",
    [
        pytest.param({}, MULTI, (), id="defaults-leave-the-preset-to-choose"),
        pytest.param({"languages": ["eng"]}, MULTI, ("--subtitle", "1,2", "--subtitle-burned=none"),
                     id="every-english-track-none-burned"),
        pytest.param({"languages": ["eng"], "forced_only": True}, MULTI, ("--subtitle", "1", "--subtitle-burned=none"),
                     id="forced-only-selects-the-forced-track"),
        pytest.param({"languages": ["spa", "eng"], "burn": True}, MULTI, ("--subtitle", "1,2,3",
                     "--subtitle-burned=1"), id="burned-only-when-asked"),
        pytest.param({"forced_only": True}, MULTI, ("--subtitle", "1", "--subtitle-burned=none"),
                     id="forced-of-any-language"),
        pytest.param({"languages": ["jpn"]}, MULTI, ("--subtitle", "none"), id="no-matching-subtitles"),
        pytest.param({"languages": ["eng"], "forced_only": True}, None,
                     ("--subtitle-lang-list", "eng", "--all-subtitles", "--subtitle-forced", "--subtitle-burned=none"),
                     id="unknown-facts-pass-the-list-to-handbrake"),
    ],
)  # fmt: skip
def test_subtitles(settings: dict[str, Any], facts: MediaFacts | None, expected: tuple[str, ...]) -> None:
    assert subtitle_options(Subtitles.model_validate(settings), facts) == expected


def test_track_options_come_before_the_presets_own_args_so_an_operators_option_wins() -> None:
    preset = Preset(handbrake="Fast 1080p30", args=("--aencoder", "av_aac"))

    argv = encode_argv(
        binary="HandBrakeCLI", preset=preset, source=Path("/s.mkv"), output=Path("/o.mkv"),
        tracks=audio_options(Audio(languages=("eng",)), MULTI),
    )  # fmt: skip

    assert argv[-8:] == ("--audio", "1", "--aencoder", "copy", "--audio-fallback", "av_aac", "--aencoder", "av_aac")


def test_a_track_setting_changes_the_preset_identity_and_defaults_do_not() -> None:
    preset_hash = preset_identity(Preset(handbrake="Fast 1080p30"), import_file_content=None, handbrake_version="1.6.1")

    def identity(audio: Audio | None = None, subtitles: Subtitles | None = None) -> str:
        return with_tracks(preset_hash, audio=audio, subtitles=subtitles)

    assert identity() == identity(Audio(), Subtitles()) == preset_hash  # outputs made before stay in sync
    assert identity(audio=Audio(languages=("eng",))) != identity()
    assert identity(subtitles=Subtitles(forced_only=True)) != identity()
    assert identity(audio=Audio(languages=("eng",))) != identity(audio=Audio(languages=("jpn",)))
