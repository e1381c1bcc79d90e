"""Decode a whole output once, to find damage no header shows (`verify: {decode: true}`).

The duration, end-of-stream and byte-count checks read headers, the tail and the size: a
file whose middle was damaged (a bad sector, a flipped block on a failing disk, a muxer bug)
passes them all. Only decoding every frame finds it. ffmpeg does that with
`-v error -i OUTPUT -f null -`: it prints nothing unless something is wrong, so any line it
prints, or a non-zero exit, means the output cannot be played whole.

Decoding costs CPU (a fraction of the encode's, all of it on the same host), so it runs
like the encoder: at the encoders' niceness and idle I/O priority from its first
instruction, in a session of its own that dies with the agent (the runner's prefix), and a
cancelled check kills its process group. Only the first lines of its complaints are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

from agent.handbrake.runner import start_low_priority

FFMPEG = "ffmpeg"
# ffmpeg may print one line per damaged frame: keep the first few as the reason.
KEPT_ERROR_LINES = 5


@dataclass(frozen=True)
class DecodeResult:
    """How decoding the whole file went: ffmpeg's exit code and the first error lines it printed."""

    exit_code: int
    errors: tuple[str, ...]


def decode_argv(path: Path, *, ffmpeg: str = FFMPEG) -> tuple[str, ...]:
    """Given a media file, return the ffmpeg argv that decodes all of its streams and discards them."""
    return (ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-i", str(path), "-f", "null", "-")


async def decode_whole(path: Path, *, nice: int, ffmpeg: str = FFMPEG) -> DecodeResult:
    """Given a media file and a niceness (0-19), decode all of it at that niceness and return the result;
    raise FileNotFoundError if ffmpeg is not installed."""
    if shutil.which(ffmpeg) is None:
        raise FileNotFoundError(f"{ffmpeg}: not found (install the ffmpeg package)")
    process = await start_low_priority(decode_argv(path, ffmpeg=ffmpeg), nice=nice, stdout=asyncio.subprocess.DEVNULL)
    try:
        errors = await _first_lines(process)
        exit_code = await process.wait()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        raise
    return DecodeResult(exit_code=exit_code, errors=errors)


async def _first_lines(process: asyncio.subprocess.Process) -> tuple[str, ...]:
    """Read stderr to its end (a full pipe would block ffmpeg); return its first non-empty lines."""
    stream = process.stderr
    if stream is None:
        raise RuntimeError("ffmpeg was started without a stderr pipe")
    kept: list[str] = []
    partial = b""
    while chunk := await stream.read(64 * 1024):
        *lines, partial = (partial + chunk).split(b"\n")
        partial = partial[-4096:]
        _keep(kept, lines)
    _keep(kept, [partial])
    return tuple(kept)


def _keep(kept: list[str], lines: list[bytes]) -> None:
    for line in lines:
        text = line.decode("utf-8", errors="replace").strip()
        if text and len(kept) < KEPT_ERROR_LINES:
            kept.append(text[:500])
