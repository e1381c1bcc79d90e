"""The estimated saving of a file (agent.saving_estimate): a decision table over what is known of
the file and what its library's finished encodes say. Facts recorded from real ffprobe output."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agent.saving_estimate import EncodeHistory, FinishedEncode, estimated_saving, history_of, total_line
from agent.store.media_facts import StoredFacts
from tests.support.recorded_facts import H264_LOW, HEVC

MB = 1_000_000
NO_HISTORY = EncodeHistory()
MPEG2 = replace(H264_LOW, video=replace(H264_LOW.video, codec="mpeg2video"))
NO_VIDEO = replace(H264_LOW, video=None)


def known(facts: object) -> StoredFacts:
    return StoredFacts(facts, None, "2026-01-01T00:00:00+00:00")  # type: ignore[arg-type]


def unreadable() -> StoredFacts:
    return StoredFacts(None, "x.mkv: ffprobe cannot read it (exit code 1): Invalid data", "2026-01-01T00:00:00+00:00")


def encodes(codec: str | None, *ratios: float, larger_output: str | None = None) -> list[FinishedEncode]:
    return [FinishedEncode(codec, 10 * MB, round(10 * MB * ratio), larger_output) for ratio in ratios]


H264_HALF = history_of(encodes("h264", 0.5, 0.5, 0.4, 0.6, 0.5))  # median 0.5, five encodes
H264_FEW = history_of(encodes("h264", 0.1, 0.1, 0.1, 0.1))  # four: too few to trust
H264_FALLBACKS = history_of(encodes("h264", 1.3, 1.3, 1.3, larger_output="copy") + encodes("h264", 0.9, 0.9))


@pytest.mark.parametrize(
    ("action", "facts", "history", "expected"),
    [
        pytest.param("copy", known(H264_LOW), H264_HALF, 0, id="a-copy-saves-nothing"),
        pytest.param("skip", known(H264_LOW), H264_HALF, 0, id="a-skip-saves-nothing"),
        pytest.param("transcode", known(H264_LOW), NO_HISTORY, 4 * MB, id="h264-without-history-saves-40-percent"),
        pytest.param("transcode", known(HEVC), NO_HISTORY, 0, id="hevc-without-history-saves-nothing"),
        pytest.param("transcode", known(MPEG2), NO_HISTORY, 6 * MB, id="mpeg2-without-history-saves-60-percent"),
        pytest.param("transcode", known(H264_LOW), H264_HALF, 5 * MB, id="h264-with-history-saves-its-median"),
        pytest.param("transcode", known(H264_LOW), H264_FEW, 4 * MB, id="too-few-encodes-keep-the-default"),
        pytest.param("transcode", known(MPEG2), H264_HALF, 6 * MB, id="another-codecs-history-is-not-used"),
        pytest.param("transcode", None, H264_HALF, 5 * MB, id="unknown-codec-uses-the-librarys-median"),
        pytest.param("transcode", None, NO_HISTORY, 4 * MB, id="unknown-codec-without-history-saves-40-percent"),
        pytest.param("transcode", known(H264_LOW), H264_FALLBACKS, 0, id="fallbacks-and-growth-save-nothing"),
        pytest.param("transcode", unreadable(), H264_HALF, 0, id="an-unreadable-file-saves-nothing"),
        pytest.param("transcode", known(NO_VIDEO), H264_HALF, 0, id="a-file-without-video-saves-nothing"),
    ],
)
def test_the_estimated_saving_of_a_file(
    action: str, facts: StoredFacts | None, history: EncodeHistory, expected: int
) -> None:
    assert estimated_saving(action=action, size=10 * MB, known=facts, history=history) == expected


def test_the_history_keeps_a_median_and_a_count_per_source_codec() -> None:
    history = history_of([*encodes("h264", 0.2, 0.4, 0.9), *encodes(None, 0.5), FinishedEncode("hevc", 0, 5, None)])

    assert history.by_codec == {"h264": (0.4, 3)}  # an empty source is left out
    assert history.overall == (0.45, 4)


def test_the_total_line_says_how_many_files_are_not_estimated_yet() -> None:
    assert total_line(5 * 1024 * 1024, files=2, unknown=0) == "Estimated saving: 5 MiB (2 files to encode)"
    assert total_line(1536, files=1, unknown=3) == (
        "Estimated saving: 1.5 KiB (1 file to encode; 3 more not probed yet (hb2r plan --probe))"
    )
