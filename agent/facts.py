"""A video's media facts, read from ffprobe's JSON: what per-library rules decide on.

PURE: the probe (`agent.handbrake.probe.probe_facts`) runs ffprobe twice, once for the
container and every stream (`-show_format -show_streams`) and once for the first video frame
(`-select_streams v:0 -show_frames -read_intervals %+#1`), and hands both JSON documents here.
Two runs because HDR10's mastering display metadata and HDR10+ live in the first frame's side
data when the encoder put them in the bitstream (x265's SEI), while a container that carries
them (and Dolby Vision's configuration record) puts them in the stream's side data; one run
cannot show every stream and only the video's first frame.

Decisions where ffprobe leaves a choice:
- container: a short name an operator writes in a rule (`mkv`, `mp4`, `mov`, `avi`, `ts`,
  `mpg`, `wmv`, `webm`), from `format_name` (and MP4's `major_brand`, to tell MOV apart);
  otherwise the first name ffprobe gives.
- video bitrate: the stream's `bit_rate`, else Matroska's `BPS` tag (mkvmerge writes it), else
  None: Matroska written by ffmpeg states none. `bitrate` (the whole file's) is always there
  for a readable file; rules that ask for a video bitrate fall back to it (`effective_video_bitrate`).
- bit depth: `bits_per_raw_sample`, else read from the pixel format (`...10le` is 10 bits), else 8.
- HDR kind, strongest first: Dolby Vision (a DOVI configuration record, with its profile),
  HDR10+ (SMPTE 2094-40 dynamic metadata), HDR10 (PQ transfer with mastering display or content
  light level metadata), PQ (the transfer alone), HLG, else SDR.
- language: the stream's `language` tag, lower case; none is `und` (ISO 639-2 "undetermined").
- subtitles are text when their codec is one HandBrake can convert (SubRip, ASS/SSA, WebVTT,
  MP4 timed text, TTML); anything else (PGS, VobSub, DVB) is bitmap, which can only be passed
  through or burned in.
- The first video stream that is not a cover picture (`attached_pic`) is the video.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

FACTS_VERSION = 1  # stored with the facts: a newer parser may need to probe again


class FactsError(ValueError):
    """ffprobe's answer cannot be read as media facts; the message says why."""


class HdrKind(StrEnum):
    SDR = "sdr"
    HLG = "hlg"
    PQ = "pq"
    HDR10 = "hdr10"
    HDR10_PLUS = "hdr10+"
    DOLBY_VISION = "dolby_vision"

    @property
    def is_hdr(self) -> bool:
        return self is not HdrKind.SDR


@dataclass(frozen=True)
class VideoFacts:
    codec: str
    profile: str | None
    bit_depth: int
    width: int
    height: int
    frame_rate: float | None
    hdr: HdrKind
    dolby_vision_profile: int | None = None


@dataclass(frozen=True)
class AudioTrack:
    index: int  # the stream's index in the file
    codec: str
    channels: int | None
    language: str
    default: bool


@dataclass(frozen=True)
class SubtitleTrack:
    index: int
    codec: str
    language: str
    forced: bool
    default: bool
    text: bool  # False: a bitmap (PGS, VobSub, DVB): pass through or burn in only


@dataclass(frozen=True)
class MediaFacts:
    container: str
    duration: float | None
    size: int | None  # bytes, as ffprobe read them
    bitrate: int | None  # bits per second, the whole file
    video_bitrate: int | None  # bits per second, the video stream, when the file says
    video: VideoFacts | None
    audio: tuple[AudioTrack, ...] = ()
    subtitles: tuple[SubtitleTrack, ...] = ()

    @property
    def effective_video_bitrate(self) -> int | None:
        """Return the video's bitrate, or the whole file's where the file does not state the video's."""
        return self.video_bitrate if self.video_bitrate is not None else self.bitrate


TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "ttml"})
_CONTAINERS = {"matroska": "mkv", "webm": "webm", "avi": "avi", "mpegts": "ts", "mpeg": "mpg", "asf": "wmv"}
_DEPTH = re.compile(r"p(\d{2})(?:le|be)$")


def parse_facts(streams_json: str, first_frame_json: str | None = None) -> MediaFacts:
    """Given ffprobe's `-show_format -show_streams` JSON and, if read, its JSON for the first video
    frame, return the media facts; raise FactsError if the JSON is not ffprobe's answer about a file."""
    document = _load(streams_json)
    frame_document = _load(first_frame_json) if first_frame_json else {}
    form = document.get("format")
    streams = document.get("streams")
    if not isinstance(form, dict) or not isinstance(streams, list):
        raise FactsError("ffprobe's answer has no format or no streams")
    frames = frame_document.get("frames") or []
    first_frame: dict[str, Any] = next((frame for frame in frames if frame.get("media_type") == "video"), {})
    video_stream = next(
        (
            stream
            for stream in streams
            if stream.get("codec_type") == "video" and not _disposition(stream, "attached_pic")
        ),
        None,
    )
    return MediaFacts(
        container=_container(form),
        duration=_number(form.get("duration")),
        size=_integer(form.get("size")),
        bitrate=_integer(form.get("bit_rate")),
        video_bitrate=None if video_stream is None else _video_bitrate(video_stream),
        video=None if video_stream is None else _video(video_stream, first_frame),
        audio=tuple(_audio(stream) for stream in streams if stream.get("codec_type") == "audio"),
        subtitles=tuple(_subtitle(stream) for stream in streams if stream.get("codec_type") == "subtitle"),
    )


def facts_to_json(facts: MediaFacts) -> str:
    """Return the facts as JSON text, for the store."""
    return json.dumps({"version": FACTS_VERSION, **asdict(facts)}, sort_keys=True)


def facts_from_json(text: str) -> MediaFacts | None:
    """Return the facts stored as JSON text; None if they were stored by another version of the parser."""
    data = json.loads(text)
    if data.pop("version", None) != FACTS_VERSION:
        return None
    video = data.pop("video")
    return MediaFacts(
        **{key: value for key, value in data.items() if key not in ("audio", "subtitles")},
        video=None if video is None else VideoFacts(**{**video, "hdr": HdrKind(video["hdr"])}),
        audio=tuple(AudioTrack(**track) for track in data["audio"]),
        subtitles=tuple(SubtitleTrack(**track) for track in data["subtitles"]),
    )


def _load(text: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise FactsError(f"ffprobe's answer is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise FactsError("ffprobe's answer is not a JSON object")
    return document


def _container(form: dict[str, Any]) -> str:
    names = str(form.get("format_name") or "unknown").split(",")
    if "mp4" in names or "mov" in names:
        brand = str((form.get("tags") or {}).get("major_brand", "")).strip()
        return "mov" if brand == "qt" else "mp4"
    return _CONTAINERS.get(names[0], names[0])


def _video(stream: dict[str, Any], first_frame: dict[str, Any]) -> VideoFacts:
    hdr, dolby_vision_profile = _hdr(stream, first_frame)
    return VideoFacts(
        codec=str(stream.get("codec_name") or "unknown"),
        profile=stream.get("profile"),
        bit_depth=_bit_depth(stream),
        width=_integer(stream.get("width")) or 0,
        height=_integer(stream.get("height")) or 0,
        frame_rate=_rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate")),
        hdr=hdr,
        dolby_vision_profile=dolby_vision_profile,
    )


def _hdr(stream: dict[str, Any], first_frame: dict[str, Any]) -> tuple[HdrKind, int | None]:
    side_data = [*(stream.get("side_data_list") or []), *(first_frame.get("side_data_list") or [])]
    kinds = {str(item.get("side_data_type", "")) for item in side_data}
    for item in side_data:
        if item.get("side_data_type") == "DOVI configuration record":
            return HdrKind.DOLBY_VISION, _integer(item.get("dv_profile"))
    if any("2094-40" in kind or "HDR10+" in kind for kind in kinds):
        return HdrKind.HDR10_PLUS, None
    transfer = stream.get("color_transfer") or first_frame.get("color_transfer")
    if transfer == "smpte2084":
        static = {"Mastering display metadata", "Content light level metadata"}
        return (HdrKind.HDR10 if kinds & static else HdrKind.PQ), None
    if transfer == "arib-std-b67":
        return HdrKind.HLG, None
    return HdrKind.SDR, None


def _bit_depth(stream: dict[str, Any]) -> int:
    raw = _integer(stream.get("bits_per_raw_sample"))
    if raw:
        return raw
    match = _DEPTH.search(str(stream.get("pix_fmt") or ""))
    return int(match.group(1)) if match else 8


def _video_bitrate(stream: dict[str, Any]) -> int | None:
    stated = _integer(stream.get("bit_rate"))
    if stated is not None:
        return stated
    tags = stream.get("tags") or {}
    return next((_integer(value) for key, value in tags.items() if key.upper().startswith("BPS")), None)


def _audio(stream: dict[str, Any]) -> AudioTrack:
    return AudioTrack(
        index=int(stream.get("index", 0)),
        codec=str(stream.get("codec_name") or "unknown"),
        channels=_integer(stream.get("channels")),
        language=_language(stream),
        default=_disposition(stream, "default"),
    )


def _subtitle(stream: dict[str, Any]) -> SubtitleTrack:
    codec = str(stream.get("codec_name") or "unknown")
    return SubtitleTrack(
        index=int(stream.get("index", 0)),
        codec=codec,
        language=_language(stream),
        forced=_disposition(stream, "forced"),
        default=_disposition(stream, "default"),
        text=codec in TEXT_SUBTITLES,
    )


def _language(stream: dict[str, Any]) -> str:
    language = str((stream.get("tags") or {}).get("language") or "").strip().lower()
    return language or "und"


def _disposition(stream: dict[str, Any], name: str) -> bool:
    return bool((stream.get("disposition") or {}).get(name))


def _number(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if number >= 0 and number == number and number != float("inf") else None


def _integer(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _rate(value: object) -> float | None:
    numerator, _, denominator = str(value or "").partition("/")
    try:
        rate = float(numerator) / float(denominator or 1)
    except (ValueError, ZeroDivisionError):
        return None
    return round(rate, 3) if rate > 0 else None
