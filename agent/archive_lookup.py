"""Which outputs the archive holds, found by listing only the folders asked about.

Why: `hb2r plan` plans a library a batch of folders at a time and must not hold the names
of a million outputs to answer "is this output there?". It lists the folders of the paths
a batch asks about, as the archive walk (`agent.archive_walk`) would list them (hidden
names left out, links listed as names and not followed below an output folder), and keeps
only the last few hundred listings.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from agent.archive_walk import list_archive_folder

CACHED_FOLDERS = 512


class ArchiveLookup:
    """Answers which of some archive-relative paths exist, under the output folders `tops`
    (those that are folders now: as the walk, a top may be reached through a link)."""

    def __init__(self, archive: Path, tops: Collection[str]) -> None:
        self.archive = str(archive)
        self.tops = {top for top in tops if os.path.isdir(os.path.join(self.archive, top))}
        # folder -> (its output names, its subfolder names), or None if the walk would not reach it
        self._listed: dict[str, tuple[set[str], set[str]] | None] = {}

    def present(self, paths: Collection[str]) -> set[str]:
        """Return which of these archive-relative paths the archive holds."""
        found: set[str] = set()
        if not self.tops:
            return found
        for path in paths:
            folder = path.rpartition("/")[0]
            listing = self._listing(folder)
            if listing is not None and path in listing[0]:
                found.add(path)
        return found

    def _listing(self, folder: str) -> tuple[set[str], set[str]] | None:
        if folder in self._listed:
            return self._listed[folder]
        parent, _, name = folder.rpartition("/")
        listing: tuple[set[str], set[str]] | None = None
        if not parent:
            reachable = folder in self.tops
        else:
            above = self._listing(parent)
            reachable = above is not None and name in above[1]
        if reachable:
            names, subfolders, _ = list_archive_folder(os.path.join(self.archive, folder), folder)
            listing = (set(names), {child for child, _ in subfolders})
        if len(self._listed) >= CACHED_FOLDERS:
            self._listed.clear()
        self._listed[folder] = listing
        return listing
