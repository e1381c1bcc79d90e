"""`hb2r plan`'s rules step: a stretch's transcodes as their library's rules make them (`agent.rules.ruled`).

The same decision the agent's pass makes, from the same facts: each transcode's fingerprint
(from the scan memory while size and mtime hold) and the facts the store keeps for it. A file
whose content the agent has not fingerprinted and probed yet stays a transcode by the library's
preset, its facts unknown (null in JSON), unless `read_unknown` (`hb2r plan --probe`): then its
fingerprint is read and ffprobe runs now. Not by default: on a new library of a million files
that is a million reads and ffprobe runs, where `hb2r plan` must stay close to a `find`. `hb2r
plan` writes nothing: what it probes is not kept (the agent probes again, once, and keeps it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime

from agent.config.models import Library
from agent.domain import Action, SeenFile, SourceFile, Transcode
from agent.handbrake.probe import probe_facts as default_probe
from agent.observe import fingerprint_of
from agent.probing import Probe, probe_each
from agent.rules import ruled
from agent.store.media_facts import StoredFacts

ReadFacts = Callable[[Collection[str]], dict[str, StoredFacts]]


def rule_stretch(
    library: Library,
    stretch: Sequence[Action],
    *,
    seen: Mapping[str, SeenFile],
    read_facts: ReadFacts,
    now: datetime,
    probe: Probe = default_probe,
    read_unknown: bool = False,
) -> tuple[list[Action], dict[str, StoredFacts]]:
    """Given a library, a stretch of its actions, what the scan memory holds of their files and how
    to read the kept facts by fingerprint, return the stretch with its transcodes ruled (copies,
    skips, transcodes that say why) and what is known of each ruled file's content, by path."""
    sources: dict[str, SourceFile] = {}
    for action in stretch:
        if isinstance(action, Transcode):
            source = action.source
            if read_unknown:
                found = source.fingerprint or fingerprint_of(
                    library.source / source.rel_path, source, seen.get(source.rel_path)
                )
            else:
                found = source.fingerprint or _remembered(source, seen.get(source.rel_path))
            if found is not None:
                sources[source.rel_path] = source._replace(fingerprint=found)
    if not sources:
        return list(stretch), {}
    paths = {source.fingerprint: library.source / rel for rel, source in sources.items() if source.fingerprint}
    known = read_facts(paths)
    if read_unknown:
        known |= probe_each({fingerprint: path for fingerprint, path in paths.items() if fingerprint not in known},
                            now=now, probe=probe)  # fmt: skip
    actions: list[Action] = []
    for action in stretch:
        filled = sources.get(action.source.rel_path) if isinstance(action, Transcode) else None
        if isinstance(action, Transcode) and filled is not None:
            action = ruled(action._replace(source=filled), known.get(filled.fingerprint or ""), library=library)
        actions.append(action)
    by_path = {rel: known[source.fingerprint] for rel, source in sources.items() if source.fingerprint in known}
    return actions, by_path


def _remembered(source: SourceFile, seen: SeenFile | None) -> str | None:
    """The scan memory's fingerprint of the file while its size and mtime hold, else None (not read)."""
    if seen is not None and seen.fingerprint and (seen.size, seen.mtime_ns) == (source.size, source.mtime_ns):
        return seen.fingerprint
    return None
