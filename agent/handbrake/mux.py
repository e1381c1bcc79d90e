"""What HandBrakeCLI says it muxed: the bytes it handed to the container writer.

At the end of an encode HandBrakeCLI (1.6.1 and later) logs one line per track,
`mux: track 0, 75 frames, 88518 bytes, 229.92 kbps, fifo 128`. When the output's disk fills,
the writes fail silently and the file ends up smaller than the payload it should hold; these
totals are how verification notices. Pure: the caller passes the stderr lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_MUX_TRACK = re.compile(r"\bmux: track (\d+), \d+ frames, (\d+) bytes")


def muxed_bytes(stderr_lines: Iterable[str]) -> int | None:
    """Given HandBrakeCLI's stderr lines, return the bytes muxed over all tracks; None if it did not say.

    A track reported twice (a second pass) counts once, with its last total.
    """
    tracks: dict[int, int] = {}
    for line in stderr_lines:
        match = _MUX_TRACK.search(line)
        if match:
            tracks[int(match.group(1))] = int(match.group(2))
    return sum(tracks.values()) if tracks else None
