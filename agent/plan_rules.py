"""`hb2r plan`'s rules step: its transcodes as the libraries' rules make them (`agent.rules.ruled`).

The same decision the agent's pass makes, from the same facts: each transcode's fingerprint
(from the scan memory while size and mtime hold, else read), the facts the store keeps for
it, and for contents never probed, ffprobe now. `hb2r plan` writes nothing: what it probes
is not kept (the agent probes again, once, and keeps it).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime

from agent.config.models import Config
from agent.domain import Action, Ledger, Observation, Plan, SourceFile, Transcode
from agent.handbrake.probe import probe_facts as default_probe
from agent.observe import with_fingerprints
from agent.probing import Probe, probe_each
from agent.rules import ruled
from agent.store.media_facts import StoredFacts

ReadFacts = Callable[[Collection[str]], dict[str, StoredFacts]]


def with_rules(
    config: Config,
    observation: Observation,
    ledger: Ledger,
    plan: Plan,
    *,
    read_facts: ReadFacts,
    now: datetime,
    probe: Probe = default_probe,
) -> tuple[Plan, dict[tuple[str, str], StoredFacts]]:
    """Given a plan and how to read the kept facts by fingerprint, return the plan with its
    transcodes ruled (copies, skips, and transcodes that say why) and what is known of each
    ruled file's content, by (library, path), for `--json`."""
    wanted = {(action.library, action.source.rel_path) for action in plan.actions if isinstance(action, Transcode)}
    if not wanted:
        return plan, {}
    filled = with_fingerprints(config, observation, wanted, ledger)
    sources: dict[tuple[str, str], SourceFile] = {
        (name, source.rel_path): source
        for name, observed in filled.libraries.items()
        for source in observed.files
        if (name, source.rel_path) in wanted and source.fingerprint is not None
    }
    libraries = {library.name: library for library in config.libraries}
    paths = {
        source.fingerprint: libraries[name].source / rel_path
        for (name, rel_path), source in sources.items()
        if source.fingerprint is not None
    }
    known = read_facts(paths)
    known |= probe_each({fingerprint: path for fingerprint, path in paths.items() if fingerprint not in known},
                        now=now, probe=probe)  # fmt: skip
    actions: list[Action] = []
    for action in plan.actions:
        if isinstance(action, Transcode) and (source := sources.get((action.library, action.source.rel_path))):
            action = ruled(
                action._replace(source=source), known.get(source.fingerprint or ""), library=libraries[action.library]
            )
        actions.append(action)
    by_file = {key: known[source.fingerprint] for key, source in sources.items() if source.fingerprint in known}
    return Plan(tuple(actions)), by_file
