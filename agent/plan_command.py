"""`hb2r plan`: write the plan as text or JSON while it is decided, a library at a time.

Each library is planned a batch of folders at a time (`agent.plan_stream`); its lines go to
a temporary file while its walk goes on, because its heading says how many files it has and
a library found paused shows only why: once the library is done, its heading and its lines
are copied out. Memory stays that of a batch; the temporary file holds one library's lines.

A transcode is shown with its job (queued, running, to retry, dead, cancelled), read for each
stretch of transcodes by file. JSON has the same content as ever, but its actions come first
and "pending" and "summary" after them, as they are known only at the end.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, Any, Protocol

from agent.archive_lookup import ArchiveLookup
from agent.archive_walk import archive_presence
from agent.batch_plan import rule_hashes
from agent.config.models import Config, Library
from agent.domain import Action, ArchiveObservation, LedgerEntry, PauseLibrary, Plan, SeenFile, Transcode, UserRecord
from agent.identity import library_identity
from agent.mounts import PickUp
from agent.observe import fingerprint_of, preset_hashes
from agent.plan import plan_users
from agent.plan_rules import rule_stretch
from agent.plan_stream import PlanFacts, plan_library_streamed
from agent.queued_plan import COUNT_KEYS, JobView, QueuedPlan, Stage, files_with_jobs, with_jobs
from agent.render import action_json, action_lines, heading_lines, paused_lines, summary_of, user_lines
from agent.saving_estimate import EncodeHistory, FinishedEncode, estimated_saving, history_of, total_line
from agent.store.media_facts import StoredFacts


class PlanState(PlanFacts, Protocol):
    """What `hb2r plan` reads from the store, or from `NoState`."""

    def unfinished_of_files(self, library: str, rel_paths: Sequence[str]) -> Sequence[JobView]: ...
    def load_users(self) -> tuple[UserRecord, ...]: ...
    def recorded_output_folders(self) -> set[str]: ...
    def facts_for(self, fingerprints: Collection[str]) -> dict[str, StoredFacts]: ...
    def finished_encodes(self, library: str) -> list[FinishedEncode]: ...


class NoState:
    """The store before the agent's first run: nothing recorded."""

    def unfinished_of_files(self, library: str, rel_paths: Sequence[str]) -> Sequence[JobView]:
        return []

    def load_users(self) -> tuple[UserRecord, ...]:
        return ()

    def recorded_output_folders(self) -> set[str]:
        return set()

    def facts_for(self, fingerprints: Collection[str]) -> dict[str, StoredFacts]:
        return {}

    def finished_encodes(self, library: str) -> list[FinishedEncode]:
        return []

    def ledger_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, LedgerEntry]:
        return {}

    def seen_in_folders(self, library: str, folders: Sequence[str]) -> dict[str, SeenFile]:
        return {}

    def rows_holding_outputs(self, paths: Collection[str], *, other_than: Collection[str]) -> dict[str, LedgerEntry]:
        return {}

    def ledger_folders(self, library: str) -> set[str]:
        return set()

    def ledger_with_sizes(self, library: str, sizes: Collection[int]) -> list[LedgerEntry]:
        return []

    def load_file_counts(self) -> dict[str, int]:
        return {}

    def ledger_count(self, library: str) -> int:
        return 0

    def count_under(self, library: str, prefixes: Sequence[str], *, remembered: bool) -> int:
        return 0

    def outputs_recorded_in(self, library: str, output_folder: str) -> int:
        return 0


class _Totals:
    """The summary counts, whether work is pending and the estimated saving, over the parts of a plan."""

    def __init__(self) -> None:
        self.counts = dict.fromkeys(COUNT_KEYS, 0)
        self.pending = False
        self.saving = 0  # bytes, over the files to encode whose media facts are known
        self.estimated = 0  # files to encode with an estimate
        self.unknown = 0  # files to encode whose media facts are not known yet

    def add(self, queued: QueuedPlan, savings: Mapping[str, int] | None = None) -> None:
        for key, count in queued.counts().items():
            self.counts[key] += count
        self.pending = self.pending or queued.pending
        for action in queued.plan.actions:
            if isinstance(action, Transcode) and queued.stage_of(action) not in (Stage.DEAD, Stage.CANCELLED):
                saving = (savings or {}).get(action.source.rel_path)
                self.saving += saving or 0
                self.estimated += saving is not None
                self.unknown += saving is None

    def merge(self, other: _Totals) -> None:
        for key, count in other.counts.items():
            self.counts[key] += count
        self.pending = self.pending or other.pending
        self.saving += other.saving
        self.estimated += other.estimated
        self.unknown += other.unknown

    def saving_json(self) -> dict[str, int]:
        return {"bytes": self.saving, "files": self.estimated, "not_estimated": self.unknown}


class _Library:
    """One library's lines (or JSON actions) as they are planned, and their counts."""

    def __init__(self) -> None:
        self.spool: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - closed by done()
        self.totals = _Totals()
        self.actions = 0

    def restart(self) -> None:
        self.spool.seek(0)
        self.spool.truncate()
        self.totals = _Totals()
        self.actions = 0

    def done(self) -> None:
        self.spool.close()


class PlanWriter:
    """Plans every library and writes the plan to `out` (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        state: PlanState,
        *,
        as_json: bool,
        watch: Mapping[str, PickUp],
        out: IO[str],
        now_ns: int,
        warn: Callable[[str], None],
        probe: bool = False,
    ) -> None:
        self.config = config
        self.state = state
        self.as_json = as_json
        self.watch = watch
        self.out = out
        self.now_ns = now_ns
        self.warn = warn
        self.probe = probe  # read and probe the files whose facts are not known yet (`agent.plan_rules`)
        self.totals = _Totals()
        self._hashes: dict[str, str] | None = None
        self._histories: dict[str, EncodeHistory] = {}  # each library's finished encodes, read once
        self._first_json = True

    def write(self) -> bool:
        """Plan and write everything; return whether work is pending."""
        config = self.config
        recorded = self.state.recorded_output_folders()
        outputs = [library.output for library in config.libraries]
        archive = _archive_now(config, [*outputs, *sorted(recorded - set(outputs))])
        lookup = ArchiveLookup(config.paths.archive, archive.output_folders)
        if any(self.state.ledger_count(library.name) for library in config.libraries):
            self._preset_hashes()  # the ledger has something to compare the presets with
        if self.as_json:
            self.out.write('{\n  "actions": [')
        for library in config.libraries:
            self._library(library, archive, lookup)
        changes = plan_users(config.users, self.state.load_users())
        users = QueuedPlan(Plan(tuple(changes)))
        self.totals.add(users)
        if self.as_json:
            for action in users.plan.actions:
                self._json_action(action_json(action, users))
            watch = {name: {"mode": found.mode, "reason": found.reason} for name, found in self.watch.items()}
            tail = {
                "pending": self.totals.pending, "summary": self.totals.counts,
                "estimated_saving": self.totals.saving_json(), "watch": watch,
            }  # fmt: skip
            self.out.write("\n  ],\n" + json.dumps(tail, indent=2)[2:] + "\n")
        else:
            for line in user_lines(changes):
                self.out.write(line + "\n")
            if self.totals.estimated:  # none: no file's media facts are known yet, nothing to say
                self.out.write(total_line(self.totals.saving, files=self.totals.estimated, unknown=self.totals.unknown))
                self.out.write("\n")
            self.out.write(summary_of(self.totals.counts) + "\n")
        return self.totals.pending

    def _library(self, library: Library, archive: ArchiveObservation, lookup: ArchiveLookup) -> None:
        part = _Library()
        try:

            def emit(planned: Sequence[Action]) -> None:
                stretch, facts = self._ruled(library, planned)
                queued = self._queued(library, stretch)
                savings = self._savings(library, stretch, facts)
                part.totals.add(queued, savings)
                part.actions += len(stretch)
                if self.as_json:
                    lines = [
                        json.dumps(_with_facts(action_json(action, queued), facts, savings)) for action in stretch
                    ]
                else:
                    lines = list(action_lines(queued, attempts_allowed=self.config.retry.attempts, savings=savings))
                part.spool.write("\n".join(lines) + "\n")

            outcome = plan_library_streamed(
                self.config, library, self.state, archive=archive, lookup=lookup,
                preset_hash=library_identity(library, self._hashes) if self._hashes else None,
                rule_hashes=rule_hashes(library, self._hashes) if self._hashes else frozenset(),
                excluded=(self.config.paths.archive, self.config.paths.state_dir), now_ns=self.now_ns,
                emit=emit, restart=part.restart,
            )  # fmt: skip
            pick_up = self.watch.get(library.name)
            if outcome.paused is not None:
                paused = QueuedPlan(Plan((PauseLibrary(library.name, outcome.paused),)))
                self.totals.add(paused)
                if self.as_json:
                    self._json_action(action_json(paused.plan.actions[0], paused))
                else:
                    for line in paused_lines(library, outcome.paused, pick_up, self.config):
                        self.out.write(line + "\n")
                return
            self.totals.merge(part.totals)
            if not self.as_json:
                for line in heading_lines(library, self.config, files=outcome.files, in_sync=not part.actions,
                                          pick_up=pick_up):  # fmt: skip
                    self.out.write(line + "\n")
            part.spool.seek(0)
            if self.as_json:
                for line in part.spool:
                    self._json_action_line(line.rstrip("\n"))
            else:
                shutil.copyfileobj(part.spool, self.out)
        finally:
            part.done()

    def _json_action(self, data: Mapping[str, object]) -> None:
        self._json_action_line(json.dumps(data))

    def _json_action_line(self, encoded: str) -> None:
        self.out.write(("\n    " if self._first_json else ",\n    ") + encoded)
        self._first_json = False

    def _queued(self, library: Library, stretch: Sequence[Action]) -> QueuedPlan:
        """Return the stretch with the jobs of its transcodes (see `agent.queued_plan.with_jobs`)."""
        plan = Plan(tuple(stretch))
        transcodes = [action for action in stretch if isinstance(action, Transcode)]
        if not transcodes:
            return QueuedPlan(plan)
        jobs = self.state.unfinished_of_files(library.name, [action.source.rel_path for action in transcodes])
        if not jobs:
            return QueuedPlan(plan)
        with_job = files_with_jobs(plan, jobs)
        fingerprints = {
            (library.name, action.source.rel_path): found
            for action in transcodes
            if (library.name, action.source.rel_path) in with_job and action.source.fingerprint is None
            and (found := fingerprint_of(library.source / action.source.rel_path, action.source, None)) is not None
        }  # fmt: skip
        identity = library_identity(library, self._preset_hashes())
        by_library = {library.name: identity} if identity is not None else {}
        return with_jobs(plan, jobs, fingerprints=fingerprints, preset_hashes=by_library)

    def _ruled(self, library: Library, stretch: Sequence[Action]) -> tuple[list[Action], dict[str, StoredFacts]]:
        """Return the stretch with its transcodes as the library's rules make them (`agent.plan_rules`),
        and what is known of each ruled file, by path."""
        folders = sorted(
            {action.source.rel_path.rpartition("/")[0] for action in stretch if isinstance(action, Transcode)}
        )
        if not folders:
            return list(stretch), {}
        seen = self.state.seen_in_folders(library.name, folders)
        return rule_stretch(library, stretch, seen=seen, read_facts=self.state.facts_for, now=datetime.now(UTC),
                            read_unknown=self.probe)  # fmt: skip

    def _savings(
        self, library: Library, stretch: Sequence[Action], facts: Mapping[str, StoredFacts]
    ) -> dict[str, int]:
        """Return the estimated saving of each transcode of the stretch whose media facts are known, by path."""
        transcodes = [action for action in stretch if isinstance(action, Transcode) and action.source.rel_path in facts]
        if not transcodes:
            return {}
        history = self._histories.get(library.name)
        if history is None:
            history = self._histories[library.name] = history_of(self.state.finished_encodes(library.name))
        return {
            action.source.rel_path: estimated_saving(
                action="transcode", size=action.source.size, known=facts[action.source.rel_path], history=history
            )
            for action in transcodes
        }

    def _preset_hashes(self) -> dict[str, str]:
        if self._hashes is None:
            self._hashes = preset_hashes(self.config, warn=self.warn)
        return self._hashes


def _with_facts(data: dict[str, Any], facts: Mapping[str, StoredFacts], savings: Mapping[str, int]) -> dict[str, Any]:
    """Return an action's JSON with its file's media facts (or why they could not be read), where known,
    and a transcode's estimated saving (null where its facts are not known)."""
    path = str(data.get("path", ""))
    if data.get("kind") == "transcode":
        data["estimated_saving"] = savings.get(path)
    known = facts.get(path) if data.get("kind") in ("transcode", "copy", "skip") else None
    if known is not None:
        data["facts"] = None if known.facts is None else dataclasses.asdict(known.facts)
        if known.error is not None:
            data["facts_error"] = known.error
    return data


def _archive_now(config: Config, folders: Collection[str]) -> ArchiveObservation:
    """Return whether the archive is there and which of these output folders it holds (its files
    are looked up a folder at a time, `agent.archive_lookup`)."""
    return archive_presence(config, folders)
