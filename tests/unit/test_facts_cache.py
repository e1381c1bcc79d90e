"""The facts a pass read are kept for the next passes, within a bound, least recently used out first."""

from __future__ import annotations

from agent.facts_cache import FactsCache
from agent.store.media_facts import StoredFacts


def unreadable(name: str) -> StoredFacts:
    return StoredFacts(None, f"{name}: ffprobe cannot read it", "2026-12-01T00:00:00")


def test_kept_facts_are_known_and_the_least_recently_used_go_first() -> None:
    cache = FactsCache(kept=2)
    cache.keep({"a": unreadable("a"), "b": unreadable("b")})
    assert cache.known(["a", "x"]) == {"a": unreadable("a")}  # "a" used now: "b" is the oldest

    cache.keep({"c": unreadable("c")})

    assert cache.known(["a", "b", "c"]) == {"a": unreadable("a"), "c": unreadable("c")}
