"""Short real clips made with ffmpeg: what the tests and benchmarks encode with the real HandBrakeCLI;
and their duration as ffprobe reads it.

A clip is testsrc2 video (H.264, ultrafast) with, unless `audio=False`, a sine tone in AAC. Clips
of different `frequency` differ in content, so their fingerprints differ too.
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def make_clip(path: Path, *, seconds: float, size: str = "320x180", frequency: int = 440, audio: bool = True) -> Path:
    """Write a real H.264 (+ AAC unless audio=False) clip of `seconds` to path, making its folder; return path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sound = ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000"] if audio else []
    encode_sound = ["-c:a", "aac", "-shortest"] if audio else []
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25", *sound,
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            *encode_sound, str(path),
        ],
        check=True,
        timeout=300,
    )  # fmt: skip
    return path


def make_clips(folder: Path, *, count: int, seconds: float, size: str = "320x180") -> list[Path]:
    """Make (or keep, if there) `count` clips `clip NN.mkv` in folder; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = [folder / f"clip {index:02d}.mkv" for index in range(count)]
    for clip in clips:
        if not clip.exists():
            make_clip(clip, seconds=seconds, size=size)
    return clips


def ffprobe_csv(path: Path, entries: str, *, check: bool = True) -> str:
    """Return ffprobe's CSV lines of `entries` (e.g. `format=duration`) for path ('' if it fails and not check)."""
    probed = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )
    return probed.stdout


def probed_duration(path: Path) -> float | None:
    """Return path's duration in seconds as ffprobe reads it from the container, None if it cannot."""
    try:
        return float(ffprobe_csv(path, "format=duration", check=False).strip())
    except ValueError:
        return None
