"""What the archive must be like for hb2r to publish into it, checked before encoding, not after.

An encode costs minutes to hours; a fault of the archive that makes its output unpublishable
must be found before HandBrakeCLI starts, and reported where an operator looks (/health, the
library's condition), not discovered once per file as a failed job. Here: the free space the
running encodes still need (for the gate).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class _Encoding(Protocol):
    estimated_output: int
    temp: Path | None


def free_space(path: Path) -> int | None:
    """Return the free bytes an unprivileged writer may use on path's file system; None if it cannot be measured."""
    try:
        stats = os.statvfs(path)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def written_so_far(running: Iterable[_Encoding]) -> list[tuple[int, int]]:
    """Return (estimated output size, bytes its temp file holds now) for each running encode."""
    pairs = []
    for encoding in running:
        written = 0
        if encoding.temp is not None:
            try:
                written = encoding.temp.stat().st_size
            except OSError:
                written = 0
        pairs.append((encoding.estimated_output, written))
    return pairs


def foreign_output(archive: Path, output_path: str, *, made_by_hb2r: bool) -> str | None:
    """Given a job's output path and whether the ledger says hb2r made what is there, return why
    publishing would replace a file hb2r did not make (an adopted or unknown one), or None."""
    final = archive / output_path
    if made_by_hb2r or not os.path.lexists(final):
        return None
    return f"{final} already exists and hb2r did not make it; it was left untouched"


def conflict_reason(job_id: int, detail: str) -> str:
    """Given a publish conflict, return the job's error: what is in the way and what the operator can do."""
    return (
        f"conflict: {detail}. hb2r never replaces a file it did not make (an adopted one included): "
        f"move it away, then run `hb2r retry {job_id}`"
    )
