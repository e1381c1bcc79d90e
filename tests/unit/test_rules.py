"""decide() and after_encode(): what a library's rules make of a file, as decision tables on the
facts of clips made with ffmpeg (recorded ffprobe answers, tests/fixtures/ffprobe)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent.config.models import Config, Library
from agent.config.rules import LargerOutput, Rule, When
from agent.domain import Copy, Skip, SourceFile, Transcode, TranscodeReason
from agent.facts import HdrKind, MediaFacts
from agent.rules import after_encode, decide, matches, ruled
from agent.store.media_facts import StoredFacts
from tests.support.recorded_facts import H264_LOW, HDR10, HEVC

assert HDR10.video is not None
DOLBY_VISION = replace(HDR10, video=replace(HDR10.video, hdr=HdrKind.DOLBY_VISION, dolby_vision_profile=8))


def rule(name: str, action: str, preset: str | None = None, **when: Any) -> Rule:
    return Rule.model_validate({"name": name, "action": action, "preset": preset, "when": when})


ALREADY_EFFICIENT = rule("already efficient", "copy", codec=["hevc", "av1"])
SMALL_FILES = rule("small files", "skip", size_below="100KiB")


@pytest.mark.parametrize(
    "when, facts, size, holds",
    [
        pytest.param({"codec": ["hevc", "av1"]}, HEVC, 96_844, True, id="codec-in-list"),
        pytest.param({"codec": ["hevc", "av1"]}, H264_LOW, 122_133, False, id="codec-not-in-list"),
        pytest.param({"bitrate_below": "300kb/s"}, H264_LOW, 122_133, True, id="bitrate-below-falls-back-to-the-file"),
        pytest.param({"bitrate_below": "200kb/s"}, H264_LOW, 122_133, False, id="bitrate-not-below"),
        pytest.param({"height_at_most": 180}, H264_LOW, 122_133, True, id="height-at-most-is-inclusive"),
        pytest.param({"height_at_most": 179}, H264_LOW, 122_133, False, id="taller"),
        pytest.param({"size_below": "100KiB"}, HEVC, 96_844, True, id="size-below"),
        pytest.param({"size_below": "100KiB"}, HEVC, 102_400, False, id="size-equal-is-not-below"),
        pytest.param({"hdr": ["hdr10", "dolby_vision"]}, HDR10, 1, True, id="hdr-kind-in-list"),
        pytest.param({"hdr": ["hdr10"]}, HEVC, 1, False, id="sdr-is-not-hdr10"),
        pytest.param({"container": ["MKV"]}, HEVC, 1, True, id="container-any-case"),
        pytest.param({"container": ["mp4"]}, HEVC, 1, False, id="other-container"),
        pytest.param({"codec": ["hevc"], "height_at_most": 100}, HEVC, 1, False, id="all-conditions-must-hold"),
        pytest.param({}, HEVC, 1, True, id="no-condition-matches-every-file"),
    ],
)
def test_a_condition(when: dict[str, Any], facts: MediaFacts, size: int, holds: bool) -> None:
    assert matches(When.model_validate(when), facts, size=size) is holds


@pytest.mark.parametrize(
    "facts, rules, hdr, expected",
    [
        pytest.param(HEVC, (ALREADY_EFFICIENT,), "copy", ("copy", None, 'rule "already efficient"'),
                     id="leave-hevc-alone"),
        pytest.param(H264_LOW, (ALREADY_EFFICIENT,), "copy", ("encode", "tv", "no rule matched"),
                     id="no-rule-matched-encodes-with-the-library-preset"),
        pytest.param(HEVC, (SMALL_FILES, ALREADY_EFFICIENT), "copy", ("skip", None, 'rule "small files"'),
                     id="first-match-wins"),
        pytest.param(HEVC, (), "copy", ("encode", "tv", "no rule matched"), id="no-rules-encode-as-today"),
        pytest.param(HDR10, (), "copy", ("copy", None, "HDR10, hdr: copy"), id="hdr-is-copied-by-default"),
        pytest.param(HDR10, (), "skip", ("skip", None, "HDR10, hdr: skip"), id="hdr-skip"),
        pytest.param(HDR10, (), "hdr10", ("encode", "hdr10", "HDR10, hdr: hdr10"),
                     id="hdr-encodes-with-the-named-preset"),
        pytest.param(DOLBY_VISION, (), "skip", ("skip", None, "Dolby Vision, hdr: skip"), id="dolby-vision"),
        pytest.param(HDR10, (rule("all", "encode"),), "copy", ("copy", None, "HDR10, hdr: copy"),
                     id="an-encode-rule-without-a-preset-still-protects-hdr"),
        pytest.param(HDR10, (rule("by name", "encode", preset="sdr-ok"),), "copy",
                     ("encode", "sdr-ok", 'rule "by name"'), id="an-8-bit-encode-of-hdr-only-when-asked-by-name"),
        pytest.param(HDR10, (ALREADY_EFFICIENT,), "skip", ("copy", None, 'rule "already efficient"'),
                     id="a-copy-rule-copies-hdr-too"),
        pytest.param(None, (ALREADY_EFFICIENT,), "copy", ("encode", "tv", "no media facts: encoded with the "
                     "library's preset"), id="unknown-facts-encode-as-today"),
    ],
)  # fmt: skip
def test_what_the_rules_decide(
    facts: MediaFacts | None, rules: tuple[Rule, ...], hdr: str, expected: tuple[str, str | None, str]
) -> None:
    decision = decide(facts, size=96_844, rules=rules, hdr=hdr, library_preset="tv")

    assert (decision.action, decision.preset, decision.reason) == expected


@pytest.mark.parametrize(
    "output_size, settings, publish, says",
    [
        pytest.param(80, LargerOutput(), "encode", "saves 20%", id="saves-enough"),
        pytest.param(90, LargerOutput(), "encode", "saves 10%", id="exactly-the-minimum-is-enough"),
        pytest.param(95, LargerOutput(), "source", "saves 5%, less than 10%: larger_output: copy",
                     id="too-little-copies-the-source-by-default"),
        pytest.param(358, LargerOutput(), "source", "is 258% larger than its source: larger_output: copy",
                     id="the-issues-hevc-clip-3.58x-larger"),
        pytest.param(120, LargerOutput(then="keep"), "encode", "larger_output: keep", id="keep"),
        pytest.param(120, LargerOutput(then="skip"), "nothing", "larger_output: skip", id="skip"),
        pytest.param(99, LargerOutput(min_saving=0), "encode", "saves 1%", id="no-minimum"),
    ],
)  # fmt: skip
def test_an_output_that_saves_too_little(output_size: int, settings: LargerOutput, publish: str, says: str) -> None:
    outcome = after_encode(source_size=100, output_size=output_size, settings=settings)

    assert outcome.publish == publish
    assert says in outcome.reason


def _library(**settings: Any) -> Library:
    config = Config.model_validate(
        {
            "version": 1,
            "paths": {"archive": "/archive", "state_dir": "/state"},
            "libraries": [{"name": "tv", "source": "/src/tv", "output": "TV", "preset": "tv", **settings}],
            "presets": {"tv": {"handbrake": "Fast 1080p30"}, "hdr10": {"handbrake": "H.265 MKV 1080p30"}},
        },
        context={"base_dir": Path("/")},
    )
    return config.libraries[0]


SOURCE = SourceFile("Show/ep1.mp4", 96_844, 1, 1, "96844:abc")
PLANNED = Transcode("tv", SOURCE, "TV/Show/ep1.mkv", TranscodeReason.NEW)
EFFICIENT = {"rules": [{"name": "already efficient", "when": {"codec": ["hevc", "av1"]}, "action": "copy"}]}


def _known(facts: MediaFacts | None, error: str | None = None) -> StoredFacts:
    return StoredFacts(facts, error, "2026-12-01T00:00:00")


@pytest.mark.parametrize(
    "known, settings, expected",
    [
        pytest.param(_known(HEVC), EFFICIENT,
                     Copy("tv", SOURCE, "TV/Show/ep1.mp4", 'hevc 97 kb/s: rule "already efficient"',
                          "already efficient"),
                     id="a-copy-keeps-the-source-extension-and-says-the-rule"),
        pytest.param(_known(H264_LOW), EFFICIENT, PLANNED, id="no-rule-matched-stays-as-planned"),
        pytest.param(_known(HEVC), {"rules": [{"name": "tiny", "when": {"size_below": "1MiB"}, "action": "skip"}]},
                     Skip("tv", SOURCE.rel_path, 'hevc 97 kb/s: rule "tiny"', by_rule=True),
                     id="a-skip-rule-is-reported"),
        pytest.param(_known(HDR10), {},
                     Copy("tv", SOURCE, "TV/Show/ep1.mp4", "hevc 10-bit 211 kb/s: HDR10, hdr: copy", None),
                     id="hdr-is-copied-by-default"),
        pytest.param(_known(HDR10), {"hdr": "hdr10"},
                     PLANNED._replace(why="hevc 10-bit 211 kb/s: HDR10, hdr: hdr10", preset="hdr10"),
                     id="hdr-encodes-with-the-named-preset"),
        pytest.param(_known(None, "ep1.mp4: ffprobe cannot read it (exit code 1): Invalid data"), EFFICIENT,
                     PLANNED._replace(why="ep1.mp4: ffprobe cannot read it (exit code 1): Invalid data: "
                                          "encoded with the library's preset"),
                     id="unreadable-facts-encode-with-the-librarys-preset-saying-why"),
        pytest.param(None, EFFICIENT, PLANNED, id="facts-not-read-yet-stay-as-planned"),
    ],
)  # fmt: skip
def test_what_the_rules_make_of_a_planned_transcode(
    known: StoredFacts | None, settings: dict[str, Any], expected: Transcode | Copy | Skip
) -> None:
    assert ruled(PLANNED, known, library=_library(**settings)) == expected
