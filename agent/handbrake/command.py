"""HandBrakeCLI command lines, built as data.

Why pure: the argv is part of a preset's identity and of what an operator sees in
`hb2r jobs`, so it must come out the same from the same preset every time, and tests read
it as a table without starting a process. Like borgmatic, each piece is a tuple and the
command is their sum; only `runner.py` and `probe.py` ever run one.

The order is hb2r's options first (then the tracks a library's `audio:` and `subtitles:` keep,
from `tracks.py`), then the preset's own `args`, so that an operator's
extra option (say `--encoder-preset slow`) overrides what the named preset sets. The
config model already refuses `args` that name input, output, `--json`, preset or format.
"""

from __future__ import annotations

from pathlib import Path

from agent.config.models import Preset

# HandBrakeCLI's muxer names for the containers a preset may ask for.
MUXERS = {"mkv": "av_mkv", "mp4": "av_mp4", "webm": "av_webm"}


def encode_argv(
    *, binary: str, preset: Preset, source: Path, output: Path, tracks: tuple[str, ...] = ()
) -> tuple[str, ...]:
    """Given the HandBrakeCLI binary, a preset, the source and output paths and the track options
    (`agent.handbrake.tracks`), return the argv that encodes source into output with --json
    progress; raise KeyError if the preset's container has no HandBrake muxer (the config model
    allows none such)."""
    return (
        (binary, "--json", "--input", str(source), "--output", str(output), "--preset", preset.handbrake)
        + (("--preset-import-file", str(preset.import_file)) if preset.import_file is not None else ())
        + ("--format", MUXERS[preset.container])
        + tracks
        + tuple(preset.args)
    )


def preset_list_argv(binary: str) -> tuple[str, ...]:
    """Given the HandBrakeCLI binary, return the argv that lists its built-in presets (on stderr)."""
    return (binary, "--preset-list")


def parse_preset_list(stderr_text: str) -> frozenset[str]:
    """Given what `HandBrakeCLI --preset-list` wrote to stderr, return the preset names.

    HandBrakeCLI indents by four spaces per level: a folder is `Name/`, a preset is its
    name one level below its folder, and a preset's description is wrapped one level below
    the preset. Imported presets may sit at the top level, outside any folder. Log lines
    (`[12:00:00] ...`, `Cannot load ...`, `HandBrake has exited.`) are mixed in; a
    top-level line counts as a preset only when a description follows it, so a log line is
    never taken for a name. Never raises: text that is not a preset list gives an empty set.
    """
    entries = [
        (_indent(line) // 4, line.strip())
        for line in stderr_text.splitlines()
        if line.strip() and not line.startswith("[") and _indent(line) % 4 == 0
    ]
    names: set[str] = set()
    # The open folders and presets above the current line, as (depth, is_folder).
    open_entries: list[tuple[int, bool]] = []
    for index, (depth, text) in enumerate(entries):
        while open_entries and open_entries[-1][0] >= depth:
            open_entries.pop()
        parent = open_entries[-1] if open_entries else None
        if parent is not None and not parent[1]:
            continue  # a line of the description of the preset above
        if text.endswith("/"):
            if parent is not None or depth == 0:
                open_entries.append((depth, True))
            continue
        followed_by_description = index + 1 < len(entries) and entries[index + 1][0] == depth + 1
        if (parent is not None and parent[0] == depth - 1) or (depth == 0 and followed_by_description):
            names.add(text)
            open_entries.append((depth, False))
    return frozenset(names)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))
