"""parse_facts: ffprobe's JSON -> MediaFacts, on answers recorded from real ffprobe runs on clips
made with ffmpeg (tests/fixtures/ffprobe, made by `python -m tests.support.media_clips`), and
on small answers written here for what no clip made on this machine carries (Dolby Vision and
HDR10+ need encoders Debian's ffmpeg does not have; their side data is named as ffprobe names it)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agent.facts import (
    AudioTrack,
    FactsError,
    HdrKind,
    SubtitleTrack,
    facts_from_json,
    facts_to_json,
    parse_facts,
)
from tests.support.recorded_facts import recorded


@pytest.mark.parametrize(
    "name, container, codec, profile, depth, size, hdr",
    [
        pytest.param("hevc", "mkv", "hevc", "Main", 8, (640, 360), HdrKind.SDR, id="hevc-8-bit-sdr"),
        pytest.param("h264_low", "mkv", "h264", "Constrained Baseline", 8, (320, 180), HdrKind.SDR, id="h264-low"),
        pytest.param("hdr10", "mkv", "hevc", "Main 10", 10, (320, 180), HdrKind.HDR10, id="hdr10-pq-with-mastering"),
    ],
)
def test_the_video_of_each_recorded_clip(
    name: str, container: str, codec: str, profile: str, depth: int, size: tuple[int, int], hdr: HdrKind
) -> None:
    facts = recorded(name)

    assert facts.container == container
    assert facts.video is not None
    video = facts.video
    assert (video.codec, video.profile, video.bit_depth, (video.width, video.height)) == (codec, profile, depth, size)
    assert video.frame_rate == 25.0
    assert video.hdr is hdr


def test_the_low_bitrate_clip_states_its_whole_bitrate_and_matroska_no_video_bitrate() -> None:
    facts = recorded("h264_low")

    assert facts.duration == pytest.approx(4.0, abs=0.1)
    assert facts.bitrate is not None and 150_000 < facts.bitrate < 300_000
    assert facts.video_bitrate is None  # ffmpeg's Matroska muxer states none
    assert facts.effective_video_bitrate == facts.bitrate


def test_the_multi_track_clip_lists_every_audio_and_subtitle_track() -> None:
    facts = recorded("multi_track")

    assert facts.audio == (
        AudioTrack(index=1, codec="aac", channels=1, language="eng", default=True),
        AudioTrack(index=2, codec="aac", channels=6, language="jpn", default=False),
        AudioTrack(index=3, codec="aac", channels=1, language="fre", default=False),
    )
    assert facts.subtitles == (
        SubtitleTrack(index=4, codec="subrip", language="eng", forced=True, default=False, text=True),
        SubtitleTrack(index=5, codec="subrip", language="eng", forced=False, default=False, text=True),
        SubtitleTrack(index=6, codec="subrip", language="spa", forced=False, default=False, text=True),
    )


def answer(*streams: dict[str, Any], format_name: str = "matroska,webm", **form: Any) -> str:
    return json.dumps({"streams": list(streams), "format": {"format_name": format_name, "duration": "60.0", **form}})


def video(**fields: Any) -> dict[str, Any]:
    return {"index": 0, "codec_type": "video", "codec_name": "hevc", "width": 3840, "height": 2160, **fields}


def frame(*side_data: str, transfer: str | None = None) -> str:
    first: dict[str, Any] = {"media_type": "video", "side_data_list": [{"side_data_type": kind} for kind in side_data]}
    if transfer:
        first["color_transfer"] = transfer
    return json.dumps({"frames": [first]})


@pytest.mark.parametrize(
    "stream, first_frame, expected, dv_profile",
    [
        pytest.param(video(), None, HdrKind.SDR, None, id="no-transfer-is-sdr"),
        pytest.param(video(color_transfer="bt709"), None, HdrKind.SDR, None, id="bt709-is-sdr"),
        pytest.param(video(color_transfer="arib-std-b67"), None, HdrKind.HLG, None, id="hlg"),
        pytest.param(video(color_transfer="smpte2084"), None, HdrKind.PQ, None, id="pq-without-metadata"),
        pytest.param(
            video(color_transfer="smpte2084"),
            frame("Content light level metadata"),
            HdrKind.HDR10,
            None,
            id="pq-with-content-light-level-in-the-frame-is-hdr10",
        ),
        pytest.param(
            video(color_transfer="smpte2084", side_data_list=[{"side_data_type": "Mastering display metadata"}]),
            None,
            HdrKind.HDR10,
            None,
            id="pq-with-mastering-metadata-in-the-container-is-hdr10",
        ),
        pytest.param(
            video(color_transfer="smpte2084"),
            frame("Mastering display metadata", "HDR Dynamic Metadata SMPTE2094-40 (HDR10+)"),
            HdrKind.HDR10_PLUS,
            None,
            id="smpte-2094-40-is-hdr10-plus",
        ),
        pytest.param(
            video(
                color_transfer="smpte2084",
                side_data_list=[{"side_data_type": "DOVI configuration record", "dv_profile": 8, "dv_level": 6}],
            ),
            frame("Mastering display metadata"),
            HdrKind.DOLBY_VISION,
            8,
            id="dovi-record-is-dolby-vision-with-its-profile",
        ),
        pytest.param(
            video(side_data_list=[{"side_data_type": "DOVI configuration record", "dv_profile": 5}]),
            None,
            HdrKind.DOLBY_VISION,
            5,
            id="profile-5-has-no-pq-tag-and-is-still-dolby-vision",
        ),
    ],
)
def test_the_hdr_kind(
    stream: dict[str, Any], first_frame: str | None, expected: HdrKind, dv_profile: int | None
) -> None:
    facts = parse_facts(answer(stream), first_frame)

    assert facts.video is not None
    assert (facts.video.hdr, facts.video.dolby_vision_profile) == (expected, dv_profile)
    assert facts.video.hdr.is_hdr is (expected is not HdrKind.SDR)


@pytest.mark.parametrize(
    "format_name, tags, expected",
    [
        pytest.param("matroska,webm", {}, "mkv", id="matroska"),
        pytest.param("mov,mp4,m4a,3gp,3g2,mj2", {"major_brand": "isom"}, "mp4", id="mp4"),
        pytest.param("mov,mp4,m4a,3gp,3g2,mj2", {"major_brand": "qt  "}, "mov", id="quicktime"),
        pytest.param("avi", {}, "avi", id="avi"),
        pytest.param("mpegts", {}, "ts", id="transport-stream"),
        pytest.param("asf", {}, "wmv", id="windows-media"),
        pytest.param("flv", {}, "flv", id="others-keep-ffprobes-name"),
    ],
)
def test_the_container_is_named_as_an_operator_writes_it(format_name: str, tags: dict[str, str], expected: str) -> None:
    assert parse_facts(answer(video(), format_name=format_name, tags=tags)).container == expected


@pytest.mark.parametrize(
    "stream, depth, bitrate",
    [
        pytest.param(video(pix_fmt="yuv420p10le"), 10, None, id="depth-from-the-pixel-format"),
        pytest.param(video(pix_fmt="yuv420p"), 8, None, id="8-bit-pixel-format"),
        pytest.param(video(bits_per_raw_sample="12", pix_fmt="yuv420p"), 12, None, id="raw-sample-bits-win"),
        pytest.param(video(bit_rate="2100000"), 8, 2_100_000, id="stated-video-bitrate"),
        pytest.param(video(tags={"BPS-eng": "1800000"}), 8, 1_800_000, id="mkvmerge-bps-tag"),
    ],
)
def test_bit_depth_and_video_bitrate(stream: dict[str, Any], depth: int, bitrate: int | None) -> None:
    facts = parse_facts(answer(stream))

    assert facts.video is not None and facts.video.bit_depth == depth
    assert facts.video_bitrate == bitrate


def test_a_cover_picture_is_not_the_video_and_bitmap_subtitles_are_marked() -> None:
    cover = video(codec_name="mjpeg", disposition={"attached_pic": 1})
    pgs = {"index": 2, "codec_type": "subtitle", "codec_name": "hdmv_pgs_subtitle", "tags": {"language": "ENG"}}

    facts = parse_facts(answer(cover, video(index=1, codec_name="h264"), pgs))

    assert facts.video is not None and facts.video.codec == "h264"
    assert facts.subtitles == (SubtitleTrack(index=2, codec="hdmv_pgs_subtitle", language="eng", forced=False,
                                             default=False, text=False),)  # fmt: skip


def test_a_file_without_video_has_no_video_facts() -> None:
    facts = parse_facts(answer({"index": 0, "codec_type": "audio", "codec_name": "mp3", "channels": 2}))

    assert facts.video is None
    assert facts.audio == (AudioTrack(index=0, codec="mp3", channels=2, language="und", default=False),)


@pytest.mark.parametrize(
    "text, says",
    [
        pytest.param("not json", "is not JSON", id="not-json"),
        pytest.param("[]", "not a JSON object", id="a-list"),
        pytest.param("{}", "no format or no streams", id="an-empty-answer"),
    ],
)
def test_an_answer_that_is_not_ffprobes_is_refused_with_why(text: str, says: str) -> None:
    with pytest.raises(FactsError, match=says):
        parse_facts(text)


@pytest.mark.parametrize("name", ["hevc", "h264_low", "hdr10", "multi_track"])
def test_stored_facts_read_back_the_same(name: str) -> None:
    facts = recorded(name)

    assert facts_from_json(facts_to_json(facts)) == facts


def test_facts_stored_by_another_parser_version_are_probed_again() -> None:
    stored = json.loads(facts_to_json(recorded("hevc")))
    stored["version"] = 0

    assert facts_from_json(json.dumps(stored)) is None
