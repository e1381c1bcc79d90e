"""The config keys of media-aware rules: `rules:`, `larger_output:`, `hdr:`, `audio:`, `subtitles:`.

Each is a top-level key (the default for every library) and a library key of the same name.
A library's `rules:` list replaces the top-level list whole (lists do not merge: an operator
reading one library's entry sees all of its rules); in `larger_output:`, `audio:` and
`subtitles:` the keys a library sets win one by one over the top-level ones; `hdr:` is one
value. After loading, every library holds its effective values (`hb2r validate --show`).

Decisions where the issue is silent:
- A condition with several keys matches when all of them hold; a rule with an empty `when:`
  matches every file (a catch-all last rule). Lists (`codec`, `hdr`, `container`) match any of
  their values; names are compared in lower case.
- `bitrate_below` compares the video's bitrate, or the whole file's where the file states no
  video bitrate (Matroska written by ffmpeg); rates are written `2.5Mb/s`, `800kb/s` or in b/s.
- `hdr:` defaults to `copy`: with the default (8-bit) presets an encode of an HDR source would
  lose its HDR, so the source itself is published. Naming a preset encodes HDR sources with
  it (it should be a 10-bit x265 one that keeps HDR10's static metadata; hb2r cannot tell).
  A rule that says `action: encode` with a `preset:` of its own is also "asked by name".
- `larger_output.min_saving` defaults to 10 %: an output that does not save at least that is
  replaced by the source (`then: copy`, the default), kept (`keep`), or nothing is published
  (`skip`).
- `audio.languages` empty keeps HandBrake's choice (the preset's); `original` means the
  language of the source's first audio track. `fallback: first` keeps the first track when
  none matches, so a file never loses all its audio; `none` allows it.
- `subtitles.burn` is false: no subtitle is ever burned in unless asked.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from agent.config.units import format_size, parse_size

Action = Literal["encode", "copy", "skip"]
HdrKindName = Literal["sdr", "hlg", "pq", "hdr10", "hdr10+", "dolby_vision"]
AudioCodec = Literal["copy", "aac", "opus", "ac3", "eac3", "mp3", "flac"]
_LANGUAGE = re.compile(r"^[a-z]{3}$")
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kMG]?)b/s\s*$")
_RATE_UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3}


def parse_bitrate(value: object) -> int:
    """Given `2.5Mb/s`, `800kb/s`, `64000b/s` or a whole number of b/s, return bits per second;
    raise ValueError saying how to write one."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    match = _RATE.match(str(value))
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"a bitrate looks like 2.5Mb/s, 800kb/s or 64000 (b/s), got {value!r}")
    return round(float(match.group(1)) * _RATE_UNITS[match.group(2)])


def format_bitrate(value: int) -> str:
    for unit in ("G", "M", "k"):
        if value % _RATE_UNITS[unit] == 0 or value >= 10 * _RATE_UNITS[unit]:
            return f"{value / _RATE_UNITS[unit]:g}{unit}b/s"
    return f"{value}b/s"


Bitrate = Annotated[
    int,
    PlainValidator(parse_bitrate),
    PlainSerializer(format_bitrate, return_type=str),
    WithJsonSchema({"type": ["string", "integer"], "pattern": r"^\d+(\.\d+)?[kMG]?b/s$"}),
]
RuleSize = Annotated[
    int,
    PlainValidator(parse_size),
    PlainSerializer(format_size, return_type=str),
    WithJsonSchema({"type": ["string", "integer"], "pattern": r"^\d+(\.\d+)?([KMGT]i?B|B)?$"}),
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


def _lower(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value.strip().lower() for value in values))


class When(_Model):
    codec: tuple[str, ...] | None = Field(
        default=None, min_length=1, description="The video codec is one of these (ffprobe's names: hevc, av1, h264)."
    )
    bitrate_below: Bitrate | None = Field(
        default=None, description="The video's bitrate (else the file's) is below this, e.g. 4Mb/s."
    )
    height_at_most: int | None = Field(default=None, ge=1, description="The picture is at most this many lines high.")
    size_below: RuleSize | None = Field(default=None, description="The source file is smaller than this, e.g. 500MiB.")
    hdr: tuple[HdrKindName, ...] | None = Field(
        default=None,
        min_length=1,
        description="The HDR kind is one of these: sdr, hlg, pq, hdr10, hdr10+, dolby_vision.",
    )
    container: tuple[str, ...] | None = Field(
        default=None, min_length=1, description="The container is one of these: mkv, mp4, mov, avi, ts, mpg, wmv, webm."
    )

    @field_validator("codec", "container")
    @classmethod
    def _names_in_lower_case(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _lower(value)


class Rule(_Model):
    name: str = Field(
        min_length=1, max_length=80, description="Shown by `hb2r plan` as the reason, e.g. 'already efficient'."
    )
    when: When = Field(
        default_factory=When, description="Conditions on the probed facts; all must hold (none: always)."
    )
    action: Action = Field(description="encode (with the library's preset), copy (publish the source itself) or skip.")
    preset: str | None = Field(
        default=None, min_length=1, description="For encode: this entry of 'presets' instead of the library's."
    )

    @model_validator(mode="after")
    def _preset_only_for_encode(self) -> Rule:
        if self.preset is not None and self.action != "encode":
            raise ValueError(f"rule {self.name!r}: 'preset' is only for action: encode, not {self.action}")
        return self


class LargerOutput(_Model):
    min_saving: int = Field(
        default=10, ge=0, le=99, description="An output must be at least this many percent smaller than its source."
    )
    then: Literal["copy", "keep", "skip"] = Field(
        default="copy",
        description="When it is not: copy (publish the source instead), keep (publish the encode anyway) or skip "
        "(publish nothing); recorded, so the file is not encoded again.",
    )


def _languages(value: tuple[str, ...]) -> tuple[str, ...]:
    languages = _lower(value)
    for language in languages:
        if language != "original" and not _LANGUAGE.match(language):
            raise ValueError(
                f"language {language!r} is not an ISO 639-2 code like 'eng', 'jpn' or 'und', nor 'original'"
            )
    return languages


class Audio(_Model):
    languages: tuple[str, ...] = Field(
        default=(), description="Audio languages to keep (ISO 639-2: eng, jpn, und; 'original': the first track's)."
    )
    keep: Literal["all", "first"] = Field(default="all", description="Keep every matching track, or the first.")
    fallback: Literal["first", "none"] = Field(
        default="first", description="When no track matches: keep the first track (first), or none."
    )
    codec: AudioCodec = Field(
        default="copy", description="copy (pass through; AAC where it cannot be) or aac, opus, ac3, eac3, mp3, flac."
    )

    @field_validator("languages")
    @classmethod
    def _check_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _languages(value)


class Subtitles(_Model):
    languages: tuple[str, ...] = Field(
        default=(), description="Subtitle languages to keep (ISO 639-2; 'original' as for audio); none: none kept."
    )
    forced_only: bool = Field(default=False, description="Keep only the subtitles flagged forced.")
    burn: bool = Field(default=False, description="Burn the first kept subtitle into the picture (never by default).")

    @field_validator("languages")
    @classmethod
    def _check_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _languages(value)
