"""Estimated saving: how many bytes encoding a file is expected to take off the archive.

What `hb2r plan` shows per file to encode (and in total), and what `order: saving` sorts the
queue by (the job keeps its estimate from when it was queued). PURE: a file's media facts, its
size and a summary of its library's finished encodes in, bytes out; the store reads the
history (`agent.store.encode_history`), the engine and `hb2r plan` call `estimated_saving`.

The model, chosen to be one an operator can check against the archive:
- A copy or a skip saves nothing (0): the source is published as it is, or not at all.
- An encode saves `size × (1 − ratio)`, ratio = published size / source size:
  - the median ratio of this library's latest finished encodes (HISTORY_ROWS at most) of
    sources of the same video codec, once there are MIN_HISTORY of them;
  - else, for a source whose codec is not known (never probed: ffprobe could not run), the
    median of all of them, once there are MIN_HISTORY;
  - else DEFAULT_RATIOS by source codec: HEVC, AV1 and VP9 are already efficient (ratio 1, no
    saving: re-encoding them mostly grows them, which `larger_output` then undoes); H.264 0.6;
    older codecs (MPEG-2, MPEG-4 part 2, VC-1, WMV, MJPEG…) less; any other codec, or an unknown
    one, 0.6.
  An encode that `larger_output` turned into a copy or a skip counts as ratio 1 (it saved
  nothing), one it kept as published; a ratio above 1 saves nothing (never a negative saving).
- A file ffprobe could not read, or with no video, is expected to save nothing (0): its encode
  is likely to fail, so with `order: saving` it goes last.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from agent.store.media_facts import StoredFacts
from agent.wording import counted, human_size

MIN_HISTORY = 5  # finished encodes before their median replaces the default ratio
HISTORY_ROWS = 200  # the latest finished encodes of a library that the history reads
UNKNOWN_RATIO = 0.6  # a codec not listed below, or one not known
DEFAULT_RATIOS: Mapping[str, float] = {
    "hevc": 1.0,
    "av1": 1.0,
    "vp9": 1.0,
    "h264": 0.6,
    "vc1": 0.5,
    "wmv3": 0.5,
    "mpeg4": 0.5,
    "msmpeg4v3": 0.5,
    "mpeg2video": 0.4,
    "mpeg1video": 0.4,
    "mjpeg": 0.2,
}


class FinishedEncode(NamedTuple):
    """One finished encode of a library: its source's video codec (None: not known), its source's
    size, what was published, and the `larger_output` fallback that applied (None: none)."""

    codec: str | None
    source_size: int
    published_size: int
    larger_output: str | None


@dataclass(frozen=True)
class EncodeHistory:
    """A library's finished encodes, summed up: the median ratio and count per source codec, and
    over all of them."""

    by_codec: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    overall: tuple[float, int] = (1.0, 0)

    def ratio(self, codec: str | None) -> float:
        """Return the published/source ratio expected of an encode of a source of this codec."""
        if codec is not None:
            median, count = self.by_codec.get(codec, (1.0, 0))
            return median if count >= MIN_HISTORY else DEFAULT_RATIOS.get(codec, UNKNOWN_RATIO)
        median, count = self.overall
        return median if count >= MIN_HISTORY else UNKNOWN_RATIO


def history_of(encodes: Iterable[FinishedEncode]) -> EncodeHistory:
    """Given a library's finished encodes, return their summary (sources of 0 bytes are left out)."""
    by_codec: dict[str, list[float]] = {}
    every: list[float] = []
    for encode in encodes:
        if encode.source_size <= 0:
            continue
        ratio = 1.0 if encode.larger_output in ("copy", "skip") else encode.published_size / encode.source_size
        every.append(ratio)
        if encode.codec is not None:
            by_codec.setdefault(encode.codec, []).append(ratio)
    return EncodeHistory(
        by_codec={codec: (statistics.median(ratios), len(ratios)) for codec, ratios in by_codec.items()},
        overall=(statistics.median(every), len(every)) if every else (1.0, 0),
    )


def estimated_saving(*, action: str, size: int, known: StoredFacts | None, history: EncodeHistory) -> int:
    """Given what is done with a file (`transcode`, `copy`, `skip`), its size, what is known of its
    content (None: not probed) and its library's history, return the bytes its encode is expected
    to save (0 for anything but an encode; see the module docstring)."""
    if action != "transcode" or size <= 0:
        return 0
    if known is None:
        codec = None
    elif known.facts is None or known.facts.video is None:
        return 0
    else:
        codec = known.facts.video.codec.lower()
    return max(0, round(size * (1 - history.ratio(codec))))


def total_line(saving: int, *, files: int, unknown: int) -> str:
    """Return the plan's line of the total estimated saving of `files` to encode, and how many more
    are not estimated (their media facts are not known yet)."""
    files_to_encode = counted(files, "file to encode", "files to encode")
    more = f"; {unknown} more not probed yet (hb2r plan --probe)" if unknown else ""
    return f"Estimated saving: {human_size(saving)} ({files_to_encode}{more})"
