"""Which audio and subtitle tracks an encode keeps: `audio:` and `subtitles:` as HandBrakeCLI options.

PURE, beside `command.py`, which puts these options before the preset's own `args` (so an
operator's extra option still wins). Checked against HandBrakeCLI 1.6.1 on a clip with three
audio and three subtitle tracks:
- `--audio-lang-list` with no matching track selects NO audio: so where the facts are known,
  hb2r selects the tracks itself (`--audio 1,3`, HandBrake's 1-based numbers among the audio
  tracks, in file order) and applies `fallback: first` (track 1) when none matches.
- `--subtitle-forced` does not pick the tracks flagged forced (it shows only the forced
  pictures of a track, for PGS/VobSub): `forced_only` also needs the facts, to select those
  tracks by number. HandBrake 1.6.1 writes the kept track without its forced flag, and
  converts SubRip to SSA in Matroska.
- One `--aencoder copy` applies to every selected track; `copy` passes each through, and
  `--audio-fallback av_aac` encodes one that cannot be (a codec the container does not take).
Where the facts are unknown the language lists are passed to HandBrake
(`--audio-lang-list` with `--all-audio` or `--first-audio`, `--subtitle-lang-list` with
`--all-subtitles`), `original` cannot be resolved and is left out, and no fallback applies.
Default settings give no options at all: the preset chooses, as before these keys existed
(and the preset's identity is unchanged). Any subtitle setting also passes
`--subtitle-burned=none` unless `burn: true`: nothing is burned in by surprise.
"""

from __future__ import annotations

from agent.config.models import Library
from agent.config.rules import Audio, Subtitles
from agent.facts import MediaFacts

AUDIO_ENCODERS = {
    "copy": "copy",
    "aac": "av_aac",
    "opus": "opus",
    "ac3": "ac3",
    "eac3": "eac3",
    "mp3": "mp3",
    "flac": "flac24",
}


def audio_options(settings: Audio, facts: MediaFacts | None) -> tuple[str, ...]:
    """Given a library's `audio:` settings and the file's facts (None: unknown), return the HandBrakeCLI options."""
    if settings == Audio():
        return ()
    encoder = AUDIO_ENCODERS[settings.codec]
    encoding = ("--aencoder", encoder) + (("--audio-fallback", "av_aac") if encoder == "copy" else ())
    if not settings.languages:
        return encoding
    if facts is None:
        languages = [language for language in settings.languages if language != "original"]
        listed = ("--audio-lang-list", ",".join(languages)) if languages else ()
        return (*listed, "--all-audio" if settings.keep == "all" else "--first-audio", *encoding)
    original = facts.audio[0].language if facts.audio else None
    wanted = {original if language == "original" else language for language in settings.languages}
    chosen = [number for number, track in enumerate(facts.audio, start=1) if track.language in wanted]
    if settings.keep == "first":
        chosen = chosen[:1]
    if not chosen and facts.audio and settings.fallback == "first":
        chosen = [1]
    if not chosen:
        return ("--audio", "none")
    return ("--audio", ",".join(map(str, chosen)), *encoding)


def subtitle_options(settings: Subtitles, facts: MediaFacts | None) -> tuple[str, ...]:
    """Given a library's `subtitles:` settings and the file's facts (None: unknown), return the HandBrakeCLI options."""
    if settings == Subtitles():
        return ()
    burned = ("--subtitle-burned=1",) if settings.burn else ("--subtitle-burned=none",)
    if facts is None:
        languages = [language for language in settings.languages if language != "original"]
        listed = ("--subtitle-lang-list", ",".join(languages), "--all-subtitles") if languages else ()
        return listed + (("--subtitle-forced",) if settings.forced_only else ()) + burned
    original = facts.audio[0].language if facts.audio else None
    wanted = {original if language == "original" else language for language in settings.languages}
    chosen = [
        number
        for number, track in enumerate(facts.subtitles, start=1)
        if (not wanted or track.language in wanted) and (track.forced or not settings.forced_only)
    ]
    if not chosen:
        return ("--subtitle", "none")
    return ("--subtitle", ",".join(map(str, chosen)), *burned)


def track_options(library: Library, facts: MediaFacts | None) -> tuple[str, ...]:
    """Given a library (its effective `audio:` and `subtitles:`) and the file's facts (None: unknown),
    return the HandBrakeCLI options that keep the tracks they ask for."""
    return audio_options(library.audio or Audio(), facts) + subtitle_options(library.subtitles or Subtitles(), facts)
