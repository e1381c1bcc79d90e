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
from collections.abc import Callable, Mapping

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
) -> str:
    """Return a short stable hash of everything that determines a preset's output."""
    facts: dict[str, object] = {
        "handbrake": preset.handbrake,
        "import_file": hashlib.sha256(import_file_content).hexdigest() if import_file_content is not None else None,
        "container": preset.container,
        "args": list(preset.args),
        "version": handbrake_version,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def with_tracks(preset_hash: str, *, audio: Audio | None, subtitles: Subtitles | None) -> str:
    """Return the identity of an encode with a preset and a library's `audio:` and `subtitles:`
    settings, which change what the encode keeps. Settings left at their defaults (the preset
    chooses) leave the preset's identity as it is: outputs made before these keys stay in sync."""
    facts: dict[str, object] = {}
    if audio is not None and audio != Audio():
        facts["audio"] = audio.model_dump(mode="json")
    if subtitles is not None and subtitles != Subtitles():
        facts["subtitles"] = subtitles.model_dump(mode="json")
    if not facts:
        return preset_hash
    facts["preset"] = preset_hash
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def decided_identity(preset_hash: str, library: Library) -> str:
    """Return the identity of a decision the rules made for a file with a preset of this identity:
    a copy, or a skip after an encode that saved too little. It changes with the library's
    `rules:`, `hdr:` and `larger_output:`, so that a change of them shows such files as drift (or
    decides them again, with `on_preset_change: reencode`); encodes keep their preset's identity."""
    facts = {
        "preset": preset_hash,
        "rules": [rule.model_dump(mode="json") for rule in library.rules or ()],
        "hdr": library.hdr,
        "larger_output": None if library.larger_output is None else library.larger_output.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]


def library_identity(library: Library, preset_hashes: Mapping[str, str], preset: str | None = None) -> str | None:
    """Given a library, each preset's identity by name and the preset a file is encoded with
    (None: the library's), return the identity its jobs and ledger rows hold; None if unknown."""
    preset_hash = preset_hashes.get(preset or library.preset)
    if preset_hash is None:
        return None
    return with_tracks(preset_hash, audio=library.audio, subtitles=library.subtitles)
