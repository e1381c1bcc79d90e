"""Ask HandBrakeCLI and ffprobe about themselves and about media files.

Short, synchronous questions with a timeout each: which HandBrake this is (part of a
preset's identity), which built-in presets it has (checked at start-up, so a library with a
misspelt preset gets an error of its own instead of a failing job per file), and how long a
video plays (publish compares output with source: HandBrakeCLI exits 0 with a short output
when its input is truncated), and a file's media facts (`probe_facts`, for the rules). Each
runs an argv list, never a shell. The engine calls them
through `asyncio.to_thread`; the long-running encodes live in `runner.py`.
"""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path

from agent.facts import FactsError, MediaFacts, parse_facts
from agent.handbrake.command import parse_preset_list, preset_list_argv

_VERSION = re.compile(r"HandBrake (\S+)")
FFPROBE = "ffprobe"


class ProbeFailed(Exception):
    """ffprobe cannot read a file's media facts; the message says why, for that file alone."""


class ProbeUnavailable(ProbeFailed):
    """ffprobe could not run, or took too long: the host's problem now, not a fact of the file."""


def facts_argv(path: Path, *, ffprobe: str = FFPROBE) -> list[str]:
    """Return the ffprobe argv that describes the container and every stream of a file, as JSON."""
    return [ffprobe, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", "--", str(path)]


def first_frame_argv(path: Path, *, ffprobe: str = FFPROBE) -> list[str]:
    """Return the ffprobe argv that describes the first frame of a file's first video stream (its HDR side data)."""
    return [
        ffprobe, "-v", "error", "-print_format", "json", "-select_streams", "v:0", "-read_intervals", "%+#1",
        "-show_frames", "-show_entries", "frame=media_type,color_transfer,side_data_list", "--", str(path),
    ]  # fmt: skip


def probe_facts(path: Path, *, ffprobe: str = FFPROBE, timeout: float = 120) -> MediaFacts:
    """Given a media file, return its media facts (agent.facts); raise ProbeFailed naming what went wrong
    (ffprobe missing or too slow, a file it cannot read, an answer that is no media description)."""
    described = _run_ffprobe(facts_argv(path, ffprobe=ffprobe), timeout=timeout)
    if described is None:
        raise ProbeUnavailable(f"{ffprobe} could not run or took longer than {timeout:g}s")
    if described.returncode != 0:
        said = (described.stderr.strip().splitlines() or ["no message"])[-1]
        raise ProbeFailed(f"ffprobe cannot read it (exit code {described.returncode}): {said}")
    frame = _run_ffprobe(first_frame_argv(path, ffprobe=ffprobe), timeout=timeout)
    try:
        return parse_facts(described.stdout, frame.stdout if frame is not None and frame.returncode == 0 else None)
    except FactsError as error:
        raise ProbeFailed(str(error)) from None


class HandBrakeUnavailable(Exception):
    """HandBrakeCLI cannot be run; the message says why."""


def handbrake_version(binary: str, *, timeout: float = 30) -> str:
    """Return HandBrakeCLI's version, e.g. '1.6.1'; raise HandBrakeUnavailable if it cannot tell."""
    finished = _run_handbrake([binary, "--version"], binary=binary, timeout=timeout)
    match = _VERSION.search(finished.stdout + finished.stderr)
    if not match:
        raise HandBrakeUnavailable(f"{binary} --version printed no version (exit {finished.returncode})")
    return match.group(1)


def available_presets(binary: str, *, timeout: float = 60) -> frozenset[str]:
    """Given the HandBrakeCLI binary, return the names of its built-in presets;
    raise HandBrakeUnavailable if it is missing, fails, or lists no preset."""
    finished = _run_handbrake(list(preset_list_argv(binary)), binary=binary, timeout=timeout)
    names = parse_preset_list(finished.stderr)
    if finished.returncode != 0 or not names:
        last_line = (finished.stderr.strip().splitlines() or ["no output"])[-1]
        raise HandBrakeUnavailable(
            f"{binary} --preset-list listed no presets (exit {finished.returncode}): {last_line}"
        )
    return names


def media_duration(path: Path, *, ffprobe: str = FFPROBE, timeout: float = 60) -> float | None:
    """Given a media file, return how long it plays in seconds; return None if ffprobe
    cannot tell (not media, unreadable, no duration, ffprobe missing or too slow)."""
    argv = [ffprobe, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", "--", str(path)]
    finished = _run_ffprobe(argv, timeout=timeout)
    if finished is None or finished.returncode != 0:
        return None
    for line in finished.stdout.splitlines():
        try:
            seconds = float(line.strip())
        except ValueError:
            continue  # "N/A"
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None


# How much of the output's end media_end reads: enough for a keyframe interval or two.
TAIL_SECONDS = 30.0


def media_end(path: Path, *, duration: float, ffprobe: str = FFPROBE, timeout: float = 120) -> float | None:
    """Given a media file and the duration its header claims, return when its last packet ends (seconds).

    Only the last TAIL_SECONDS are read (ffprobe seeks there), so a film costs what a clip does;
    a file cut short cannot be sought to its claimed end, and ffprobe reads what there is.
    Return 0.0 if no packet can be read, None if ffprobe cannot run or is too slow.
    """
    start = max(0.0, duration - TAIL_SECONDS) if math.isfinite(duration) else 0.0
    argv = [
        ffprobe, "-v", "error", "-read_intervals", f"{start:.3f}%",
        "-show_entries", "packet=pts_time,duration_time", "-of", "csv=p=0", "--", str(path),
    ]  # fmt: skip
    finished = _run_ffprobe(argv, timeout=timeout)
    return None if finished is None else packets_end(finished.stdout)


def packets_end(csv: str) -> float:
    """Given ffprobe's `pts_time,duration_time` lines, return the latest end of a packet (0.0 if none)."""
    end = 0.0
    for line in csv.splitlines():
        fields = line.strip().split(",")
        try:
            pts = float(fields[0])
            length = float(fields[1]) if len(fields) > 1 and fields[1] not in ("", "N/A") else 0.0
        except ValueError:
            continue  # "N/A"
        if math.isfinite(pts + length):
            end = max(end, pts + length)
    return end


def _run_ffprobe(argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """Given an ffprobe argv, return its finished process with text output; None if it cannot
    start or does not finish in time."""
    try:
        return _run_text(argv, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _run_handbrake(argv: list[str], *, binary: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Given an argv that starts HandBrakeCLI, return its finished process with text output;
    raise HandBrakeUnavailable if it is not installed, cannot start or does not finish in time."""
    try:
        return _run_text(argv, timeout=timeout)
    except FileNotFoundError:
        raise HandBrakeUnavailable(f"{binary}: not found (install the handbrake-cli package)") from None
    except subprocess.TimeoutExpired:
        raise HandBrakeUnavailable(f"{binary}: did not answer within {timeout:g}s") from None
    except OSError as error:
        raise HandBrakeUnavailable(f"{binary}: cannot run: {error}") from None


def _run_text(argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run argv to the end without a shell or stdin; return it with its output as text (undecodable
    bytes replaced). Raise OSError if it cannot start, subprocess.TimeoutExpired if it is too slow."""
    return subprocess.run(  # noqa: S603 - argv list, no shell
        argv,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
