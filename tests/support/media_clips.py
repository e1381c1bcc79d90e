"""Clips that carry what media-aware rules look at, made with ffmpeg (testsrc2 + sine).

- `hevc`: an 8 s 640x360 HEVC clip at x265 crf 38 (already efficient: about 160 KB);
- `h264_low`: a 4 s 320x180 H.264 clip at 150 kb/s;
- `make_tiny_hevc` (not recorded): a 2 s 160x90 HEVC clip at x265 crf 38, quick to probe and copy;
- `hdr10`: a 2 s 10-bit HEVC clip tagged PQ / BT.2020 with mastering display and content light
  level metadata (x265's `master-display` and `max-cll`);
- `multi_track`: a 2 s H.264 clip with three AAC tracks (eng default, jpn 5.1, fre) and three
  SubRip tracks (eng forced, eng, spa).

`python -m tests.support.media_clips FOLDER` makes them in FOLDER and records ffprobe's
answers beside them as the JSON the unit tests read (tests/fixtures/ffprobe/).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
_TESTSRC = ["-f", "lavfi", "-i"]


def _ffmpeg(*arguments: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *arguments], check=True, timeout=300)


def make_hevc(path: Path) -> Path:
    _ffmpeg(
        *_TESTSRC, "testsrc2=size=640x360:rate=25", "-t", "8",
        "-c:v", "libx265", "-preset", "ultrafast", "-crf", "38", "-x265-params", "log-level=error", str(path),
    )  # fmt: skip
    return path


def make_tiny_hevc(path: Path, *, size: str = "160x90", seconds: int = 2, crf: int = 38) -> Path:
    """Write an HEVC clip (by default 2 s 160x90, x265 crf 38: already efficient)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
            "-t", str(seconds), "-c:v", "libx265", "-preset", "ultrafast", "-crf", str(crf),
            "-x265-params", "log-level=error", str(path),
        ],
        check=True,
        timeout=120,
    )  # fmt: skip
    return path

def make_h264_low(path: Path) -> Path:
    _ffmpeg(
        *_TESTSRC, "testsrc2=size=320x180:rate=25", *_TESTSRC, "sine=frequency=440:sample_rate=48000", "-t", "4",
        "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "150k", "-c:a", "aac", "-b:a", "64k", "-shortest", str(path),
    )  # fmt: skip
    return path


def make_hdr10(path: Path) -> Path:
    x265 = (
        "log-level=error:hdr10=1:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:"
        f"master-display={MASTER_DISPLAY}:max-cll=1000,400"
    )
    _ffmpeg(
        *_TESTSRC, "testsrc2=size=320x180:rate=25", "-t", "2", "-pix_fmt", "yuv420p10le",
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", x265,
        "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc", str(path),
    )  # fmt: skip
    return path


def make_multi_track(path: Path) -> Path:
    subtitles = []
    for number, words in enumerate(("Forced words", "English words", "Palabras")):
        srt = path.parent / f".{path.stem}-{number}.srt"
        srt.write_text(f"1\n00:00:00,000 --> 00:00:01,500\n{words}\n\n")
        subtitles += ["-i", str(srt)]
    _ffmpeg(
        *_TESTSRC, "testsrc2=size=320x180:rate=25",
        *_TESTSRC, "sine=frequency=440:sample_rate=48000",
        *_TESTSRC, "sine=frequency=550:sample_rate=48000",
        *_TESTSRC, "sine=frequency=660:sample_rate=48000",
        *subtitles, "-t", "2",
        *[part for index in range(7) for part in ("-map", str(index))],
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac:a:1", "6", "-c:s", "srt",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=jpn", "-metadata:s:a:2", "language=fre",
        "-metadata:s:s:0", "language=eng", "-metadata:s:s:1", "language=eng", "-metadata:s:s:2", "language=spa",
        "-disposition:a:0", "default", "-disposition:a:1", "0", "-disposition:a:2", "0",
        "-disposition:s:0", "forced", "-disposition:s:1", "0", "-disposition:s:2", "0", str(path),
    )  # fmt: skip
    for srt in path.parent.glob(f".{path.stem}-*.srt"):
        srt.unlink()
    return path


CLIPS: dict[str, Callable[[Path], Path]] = {
    "hevc": make_hevc,
    "h264_low": make_h264_low,
    "hdr10": make_hdr10,
    "multi_track": make_multi_track,
}


def record(folder: Path) -> None:
    """Make every clip in folder and write ffprobe's two answers for each as NAME.streams.json / NAME.frame.json."""
    from agent.handbrake.probe import facts_argv, first_frame_argv

    folder.mkdir(parents=True, exist_ok=True)
    for name, make in CLIPS.items():
        clip = make(folder / f"{name}.mkv")
        for kind, argv in (("streams", facts_argv(clip)), ("frame", first_frame_argv(clip))):
            answer = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=60).stdout
            (folder / f"{name}.{kind}.json").write_text(answer.replace(str(clip), f"{name}.mkv"))
        clip.unlink()


if __name__ == "__main__":
    record(Path(sys.argv[1]))
