"""Names derived from the config: where a source's transcode goes, and what a preset is.

A preset's identity is a hash of everything that shapes its output: HandBrake's preset
name, the content of an imported preset file, the container, the extra arguments and the
HandBrake version, and a library's `audio:`/`subtitles:` settings when they are not the defaults
(they change which tracks the encode keeps, so the drift policy applies to a change of them).
Two encodes with equal identities are interchangeable, so the ledger stores it and the
planner compares it to spot presets that changed since encoding.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from agent.config.models import Library, Preset
from agent.config.rules import Audio, Subtitles


def output_path(library: Library, preset: Preset, rel_path: str) -> str:
    """Given a source path inside a library, return its transcode's path inside the archive.

    `Show/S01E01.avi` with output `TV` and an mkv preset gives `TV/Show/S01E01.mkv`.
    """
    return output_namer(library, preset)(rel_path)


def output_namer(library: Library, preset: Preset) -> Callable[[str], str]:
    """Return `output_path` for one library, for the planner's loop over every file."""
    prefix = library.output + "/"
    extension = preset.extension

    def name(rel_path: str) -> str:
        stem, dot, old_extension = rel_path.rpartition(".")
        if not dot or "/" in old_extension:
            stem = rel_path
        return prefix + stem + extension

    return name


def copy_output_path(output_path: str, rel_path: str) -> str:
    """Given the output path the preset's container gives and the source's path, return the path a
    copy is published at: the same, with the source's own extension (its bytes are the source's)."""
    stem, dot, _ = output_path.rpartition(".")
    _, source_dot, source_extension = rel_path.rpartition("/")[2].rpartition(".")
    if not dot or not source_dot:
        return output_path
    return f"{stem}.{source_extension}"


def preset_identity(
    preset: Preset,
    *,
    import_file_content: bytes | None,
    handbrake_version: str,
    audio: Audio | None = None,
    subtitles: Subtitles | None = None,
) -> str:
    """Return a short stable hash of everything that determines a preset's output: with a library's
    `audio:` and `subtitles:` settings, which change what the encode keeps. Settings left at their
    defaults (the preset chooses) leave the identity as it was before these keys existed."""
    facts: dict[str, object] = {
        "handbrake": preset.handbrake,
        "import_file": hashlib.sha256(import_file_content).hexdigest() if import_file_content is not None else None,
        "container": preset.container,
        "args": list(preset.args),
        "version": handbrake_version,
    }
    if audio is not None and audio != Audio():
        facts["audio"] = audio.model_dump(mode="json")
    if subtitles is not None and subtitles != Subtitles():
        facts["subtitles"] = subtitles.model_dump(mode="json")
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
