"""The media facts a pass read or probed, kept in memory for the next passes (bounded, least
recently used out first).

A file with work left (a queued transcode) is planned again every pass, and its rules need its
facts again: reading and parsing them from the store each time costs about 0.1 s a pass per
10,000 queued files (bench/rules.py, part pass). Facts belong to a content
(a fingerprint) and never change for it, so what this process read once stays right; the bound
keeps a huge backlog from holding every file's facts in memory (a pass then reads the rest
from the store, as before).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from agent.store.media_facts import StoredFacts

KEPT = 50_000  # contents: a few tens of MB at most


class FactsCache:
    def __init__(self, *, kept: int = KEPT) -> None:
        self._kept = kept
        self._facts: OrderedDict[str, StoredFacts] = OrderedDict()

    def known(self, fingerprints: Iterable[str]) -> dict[str, StoredFacts]:
        """Return what is kept of these fingerprints (each one then counts as just used)."""
        found: dict[str, StoredFacts] = {}
        for fingerprint in fingerprints:
            kept = self._facts.get(fingerprint)
            if kept is not None:
                self._facts.move_to_end(fingerprint)
                found[fingerprint] = kept
        return found

    def keep(self, facts: Mapping[str, StoredFacts]) -> None:
        """Keep these, dropping the least recently used beyond the bound."""
        for fingerprint, kept in facts.items():
            self._facts[fingerprint] = kept
            self._facts.move_to_end(fingerprint)
        while len(self._facts) > self._kept:
            self._facts.popitem(last=False)
