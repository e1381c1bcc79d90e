"""Media facts for a pass's candidates, each content probed once.

The engine calls these between planning and acting, for the transcodes a pass planned (the
files the rules decide on): what the store keeps by fingerprint is read in batches, only contents
never probed (or probed by an older parser) are given to ffprobe, and what ffprobe says is
kept, a failure with its reason too. So a second pass over unchanged files runs no ffprobe,
and a corrupt file costs one ffprobe per content, not one per pass: its reason is shown for
that file alone and the pass goes on.

Effects (ffprobe, the store) are here; what the facts mean is `agent.facts` and `agent.rules`.
`probe_each` runs ffprobe alone (the engine calls it in a thread and records on its loop, where
the store lives; `hb2r plan` probes without recording, as it writes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path

from agent import timestamps
from agent.facts import MediaFacts
from agent.handbrake.probe import ProbeFailed, ProbeUnavailable, probe_facts
from agent.store.media_facts import StoredFacts
from agent.store.protocol import Store

Probe = Callable[[Path], MediaFacts]


def facts_for(
    store: Store, files: Iterable[tuple[Path, str]], *, now: datetime, probe: Probe = probe_facts
) -> dict[str, StoredFacts]:
    """Given (path, fingerprint) pairs, return what is known of each fingerprint: kept facts, or facts
    probed now (and kept), or why ffprobe could not read the file (kept too, until its content changes)."""
    paths = {fingerprint: path for path, fingerprint in files}
    known = store.facts_for(paths)
    probed = probe_each({fingerprint: path for fingerprint, path in paths.items() if fingerprint not in known},
                        now=now, probe=probe)  # fmt: skip
    for fingerprint, found in probed.items():
        store.record_facts(fingerprint, facts=found.facts, error=found.error, now=now)
    return known | probed


def probe_each(paths: Mapping[str, Path], *, now: datetime, probe: Probe = probe_facts) -> dict[str, StoredFacts]:
    """Given files by fingerprint, probe each; return its facts, or why ffprobe could not read it.
    A file ffprobe could not be run on (missing, too slow) is left out: nothing is known of it
    yet, and it is probed again by a later pass rather than kept as unreadable."""
    stamp = timestamps.stamp(now)
    found: dict[str, StoredFacts] = {}
    for fingerprint, path in paths.items():
        try:
            facts: MediaFacts | None = probe(path)
            error = None
        except ProbeUnavailable:
            continue
        except ProbeFailed as failure:
            facts, error = None, f"{path.name}: {failure}"
        found[fingerprint] = StoredFacts(facts, error, stamp)
    return found
