"""The reconcile pass: observe -> plan -> act on what is quick, queue what is slow.

Each pass recomputes the whole plan from the config, the disk and the ledger (level-
triggered), holding a few folders at a time, never the library (`agent.incremental_scan`):
- walks (listing only what changed, or in full), and decides each library's pause from
  counts (`agent.pause`), before anything is recorded;
- records what the walk saw (stability and the vanish breaker survive restarts), so that the
  scan memory says what is present now;
- plans each library batch by batch from the store (`agent.plan_from_store`; the kept
  folders' files read from the scan memory a page at a time), only the folders that changed
  or have work left (`PlannedFolders`; the others count as they did), and acts on each stretch of
  actions as it comes: renames (one atomic move) and adoptions (a ledger row) at once, and
  transcodes turned into jobs, one per (library, path, fingerprint, preset) identity; users
  are brought in line by `agent.auth.user_sync.sync_users` at start and on each reload;
- cancels the queued jobs no batch wanted (the file changed again, or is in sync), and sums
  the stretches' counts into the pass's summary (their jobs read by file, not the queue whole).
Encoding itself is the dispatcher's (`dispatcher.py`).

Choices:
- Fingerprints of new files are read when they are queued, at most ENQUEUE_BUDGET files a
  pass, so the first pass over a big library does not read three MiB of every file before
  the first encode starts; the rest are queued by later passes (fingerprints already in the
  scan memory cost nothing and do not count). The budget is spent in plan order, a stretch
  at a time (transcodes, then adoptions, of each stretch). Fingerprints read after the walk was
  recorded are remembered in the scan memory while the file's size and mtime hold.
- An adopted output is recorded with the current preset's identity: hb2r did not make it,
  so it cannot know better, and it will not re-encode what an operator put there. An output
  recorded under a library the config no longer has is taken over the same way; one the
  planner recognised as a renamed library's (`Adopt.from_library`) keeps its entry, moved.
- Drift, skips and paused libraries are logged when they first appear, not every pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent import archive_checks, publish, timestamps
from agent.archive_walk import ArchiveWalk
from agent.batch_plan import COPY_MARK, Claims, LibraryContext
from agent.conditions import ERROR, PAUSED, Condition, library_condition
from agent.config.models import Config, Library
from agent.domain import (
    Action,
    Adopt,
    Copy,
    Drift,
    LedgerEntry,
    PauseLibrary,
    Plan,
    RememberedFolder,
    RenameOutput,
    Skip,
    SourceFile,
    Transcode,
    Wait,
)
from agent.facts_cache import FactsCache
from agent.identity import decided_identity, library_identity
from agent.incremental_scan import Missed, combined, full_pass_due, missed_pages, what_to_record
from agent.mounts import WatchStatus
from agent.notify import events as notify_events
from agent.notify.events import Event
from agent.observe import PassWalk, fingerprints_from_disk, walk_for_pass
from agent.pause import pause_reason
from agent.plan import plan_users
from agent.plan_from_store import (
    STRETCH,
    FillFingerprints,
    NeedFingerprints,
    folder_steps,
    library_context_of,
    pause_counts,
    plan_library_tail,
    stretches,
)
from agent.probing import probe_each
from agent.publish_copy import publish_copy
from agent.queued_plan import COUNT_KEYS, QueuedPlan, with_jobs
from agent.recent_seen import RecentSeen
from agent.rules import ruled
from agent.saving_estimate import EncodeHistory, estimated_saving, history_of
from agent.scan import LibraryWalk
from agent.store.holds import Hold
from agent.store.jobs import left_alone_by_enqueue
from agent.store.media_facts import StoredFacts
from agent.store.protocol import Store
from agent.store.scans import FullPass

ENQUEUE_BUDGET = 500
ARCHIVE_WALK = "/archive"  # the archive's key in AgentState.full_pass_clock (no library is named so)


@dataclass
class AgentState:
    """What the agent knows between passes; replaced parts on a config reload."""

    config: Config
    store: Store
    preset_hashes: dict[str, str]
    broken_libraries: dict[str, str] = field(default_factory=dict)  # library -> why it cannot encode
    paused_libraries: dict[str, str] = field(default_factory=dict)  # library -> why the planner paused it
    held_libraries: dict[str, Hold] = field(default_factory=dict)  # paused by an operator
    reported: set[tuple[str, ...]] = field(default_factory=set)
    last_pass: PassSummary | None = None
    config_generation: int = 1  # 1 at start, one more for each config reload applied
    reload_error: str | None = None  # why the last reload was refused, until one is applied
    pass_problem: str | None = None  # why the last pass failed for want of resources, until one succeeds
    conditions: dict[str, Condition] = field(default_factory=dict)
    # library -> why its outputs cannot be published (e.g. its output folder is another mount):
    # its jobs wait, its condition is Error. Set by each pass and by the dispatcher before an encode.
    unpublishable_libraries: dict[str, str] = field(default_factory=dict)
    # check -> what is wrong with the archive that does not stop encoding (degraded /health)
    archive_problems: dict[str, str] = field(default_factory=dict)
    # library -> folders (relative to its source, "" for the top) inotify saw change since the
    # last pass took them: `agent.watch` adds, the reconcile pass takes them.
    dirty_folders: dict[str, set[str]] = field(default_factory=dict)
    # library -> how its changes are noticed (inotify events or polling, why, folders watched);
    # kept up to date by `agent.watch`.
    watch: dict[str, WatchStatus] = field(default_factory=dict)
    # library (and ARCHIVE_WALK) -> when its last full pass was recorded (time.monotonic()) and under
    # which config generation: empty at start, so the first pass is full (agent.incremental_scan)
    full_pass_clock: dict[str, tuple[float, int]] = field(default_factory=dict)
    # library -> its last recorded full pass (when, how long its walk took), for /api/status
    full_passes: dict[str, FullPass] = field(default_factory=dict)
    # library -> what its last planning found, by folder: a pass plans only the folders that
    # changed or have work (empty at start and after a pause: the library is planned whole)
    planned_folders: dict[str, PlannedFolders] = field(default_factory=dict)
    # (config generation, the archive folders the ledger's outputs are in), read once per generation
    recorded_output_folders: tuple[int, set[str]] | None = None
    # library (and ARCHIVE_WALK) -> its folders as the scan memory holds them, as this process's
    # last recording of a walk left them (`Store.record_walk` returns them): an idle pass reads
    # none of the folder rows again. Only the leader writes the scan memory, so they hold while
    # this process leads; `lead_epoch` is the lead they were kept under (`forget_another_lead`).
    remembered_folders: dict[str, dict[str, RememberedFolder]] = field(default_factory=dict)
    lead_epoch: int | None = None
    # each content's media facts this process read or probed, for the next passes (bounded)
    facts_cache: FactsCache = field(default_factory=FactsCache)
    # tells the operator (agent.notify.notifier.Notifier.emit; by default nobody): never blocks
    notify: Callable[[Event], None] = field(default=lambda event: None)


@dataclass(frozen=True)
class PassSummary:
    """What the last reconcile pass found: counts of the plan's actions (transcodes by their
    job's stage, keys as in `agent.queued_plan.COUNT_KEYS`), files waiting to be stable by
    library, whether work is pending, and how long it took; when the first waiting file becomes
    stable (None if none waits), for a pass to run then."""

    finished_at: datetime
    seconds: float
    counts: dict[str, int]
    waiting: dict[str, int]
    pending: bool
    next_stable_at: datetime | None = None


async def reconcile(
    state: AgentState,
    *,
    log: Any,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    store: Store | None = None,
) -> PassSummary:
    """Run one pass: observe, plan, apply what is quick, queue what is slow; return its summary.

    The pass holds one batch of folders at a time, never the library (`agent.incremental_scan`):
    it walks, decides each library's pause from counts, records the walks, then plans each
    library batch by batch from the store (`agent.plan_from_store`) and acts on each stretch of
    actions as it comes (renames, adoptions, jobs), counting them for the summary.

    `store` is what the pass reads and writes through (default: the state's): the leader's
    fenced view (`Store.fenced`), whose every transaction raises NotLeader, having written
    nothing, once this host no longer leads; the pass then stops there.
    """
    config = state.config
    store = state.store if store is None else store
    started = time.monotonic()
    dirty, state.dirty_folders = state.dirty_folders, {}
    now_ns = time.time_ns()
    walked, folders, archive_before = await _walk(state, store, dirty=dirty, now_ns=now_ns, clock=started)
    archive_lost = set(archive_before or ()) - {visit.rel_path for visit in walked.archive.folders}
    stamp = now()
    archive = walked.archive.observation
    contexts: dict[str, LibraryContext] = {}
    paused: dict[str, str] = {}
    for library in config.libraries:
        walk = walked.libraries[library.name]
        observed = walk.observation
        context = library_context_of(config, library, observed, state.preset_hashes)
        remembered = folders.get(library.name, {})
        files_now = len(observed.files) + sum(remembered[kept].file_count for kept in walk.kept if kept in remembered)
        counts = pause_counts(store, library, files_now=files_now, hidden=context.hidden,
                              output_folder_present=library.output in archive.output_folders)  # fmt: skip
        reason = pause_reason(library, archive=archive, status=observed.status, detail=observed.detail, counts=counts,
                              max_vanish_percent=config.scan.max_vanish_percent)  # fmt: skip
        if reason is None:
            contexts[library.name] = context
        else:
            paused[library.name] = reason
    state.paused_libraries = paused
    # Each library's walk, and the archive's, in a transaction of its own, the loop's turn between
    # them: a full walk of a million files takes seconds to record, and the planner lease must be
    # renewed meanwhile.
    for name in contexts:  # a paused scan must not become the vanish baseline
        walk = walked.libraries[name]
        listed, known = what_to_record(walk, walk.observation.files)
        with store.transaction():
            remembered = store.record_walk(
                library=name,
                listed=listed,
                folders=walk.folders,
                fingerprints=known,
                now_ns=now_ns,
                scanned_at=timestamps.stamp(stamp),
                full_seconds=walked.seconds[name] if name in walked.full else None,
                before_walk=folders.get(name),  # as read before the walk: not read again
            )
        _keep_remembered(state, name, remembered, full=name in walked.full)
        await give_way()
    if archive.available:
        with store.transaction():
            remembered = store.record_archive(
                folders=walked.archive.folders, listed=walked.archive.listed or {}, before_walk=archive_before
            )
        _keep_remembered(state, ARCHIVE_WALK, remembered, full=walked.full_archive)
        await give_way()
    _note_full_passes(state, walked, list(contexts), archive=archive.available, clock=started, stamp=stamp, log=log)
    await check_archive(state, log=log)
    recent = RecentSeen(store)  # the rows the planner reads, for the rules step to find again
    acting = _Acting(
        state, store, log=log, stamp=stamp, waiting=_waiting_jobs(store), budget=ENQUEUE_BUDGET, recent=recent
    )
    report = _Report(state, log=log)
    for name, reason in paused.items():
        report.add(PauseLibrary(name, reason))
    acting.tally.add_queued(QueuedPlan(Plan(tuple(PauseLibrary(name, reason) for name, reason in paused.items()))))
    configured = set(contexts) | set(paused)
    for name in paused:
        state.planned_folders.pop(name, None)  # its memory was not recorded: plan it whole once resumed
    for library in config.libraries:
        if library.name not in contexts:
            continue
        walk = walked.libraries[library.name]
        context = contexts[library.name]
        basis = (state.config_generation, context.preset_hash)
        before = state.planned_folders.get(library.name)
        whole = before is None or before.basis != basis or library.name in walked.full
        memory = PlannedFolders(basis) if whole or before is None else before
        affected = None if whole else _affected(memory, walk, library.output, walked.archive, archive_lost)
        memory.forget(affected, reached={visit.rel_path for visit in walk.folders})
        for quiet in memory.tallies.values():  # the folders not planned now count as they did
            acting.tally.counts.update(quiet.counts)
            report.current.update(quiet.reported)
        claimed: list[Claims] = []
        steps = folder_steps(
            context,
            recent,
            folders=_folders_of(walk, library.name, store, folders.get(library.name, {}), only=affected),
            configured=configured,
            now_ns=now_ns,
            claimed=claimed,
        )
        async for planned in _stretches_of(steps, fingerprints_from_disk(library)):
            stretch = await acting.rule(library, planned)
            for action in stretch:
                report.add(action)
                memory.note(action)
            await acting.act(library.name, stretch)
        state.planned_folders[library.name] = memory
        if affected is not None and not affected and memory.tail is not None:
            # Nothing in the library or its outputs moved and no work is left in it: the vanished
            # rows and the walk's problems are the last pass's (no anti-join over the ledger).
            acting.tally.counts.update(memory.tail.counts)
            report.current.update(memory.tail.reported)
            continue
        memory.tail = QuietFolder()
        tail = plan_library_tail(context, store, claims=claimed[-1], problems=walk.observation.problems)
        for stretch in stretches(tail):
            for action in stretch:
                report.add(action)
                memory.note_tail(action)
            await acting.act(library.name, stretch)
    acting.tally.add_queued(QueuedPlan(Plan(tuple(plan_users(config.users, store.load_users())))))
    _cancel_unwanted(state, store, acting.waiting, log=log, now=stamp)
    if acting.queued:
        log.info("pass queued jobs", count=acting.queued, planned=acting.tally.transcodes)
    report.close()
    state.last_pass = acting.tally.summary(finished_at=now(), seconds=time.monotonic() - started, observed_at_ns=now_ns)
    update_conditions(state, now=state.last_pass.finished_at)
    return state.last_pass


async def give_way() -> None:
    """Let the work that fell due while the pass held the loop run before the pass goes on: the
    planner lease's renewal (a pass that holds the loop past a lease loses it, and starts over),
    the API, the dispatcher. A timer, not `sleep(0)`: timers that are due run before a later one,
    while a task that only yields would be first in line again."""
    await asyncio.sleep(0.001)


async def _stretches_of(
    steps: Generator[list[Action] | NeedFingerprints, Sequence[SourceFile] | None, None], fill: FillFingerprints
) -> AsyncIterator[list[Action]]:
    """Drive the planning steps, reading the fingerprints they need in a thread (the loop stays
    free for the API and the dispatcher), and yield their actions a stretch at a time."""
    stretch: list[Action] = []
    reply: Sequence[SourceFile] | None = None
    while True:
        try:
            step = steps.send(reply)
        except StopIteration:
            break
        reply = None
        if isinstance(step, NeedFingerprints):
            reply = await asyncio.to_thread(fill, step.files, step.needed, step.seen)
            continue
        # A batch, whatever it decided: give way (a million files in sync are 200 batches and no action).
        await give_way()
        stretch.extend(step)
        while len(stretch) >= STRETCH:
            yield stretch[:STRETCH]
            stretch = stretch[STRETCH:]
    if stretch:
        yield stretch


def _folders_of(
    walk: LibraryWalk,
    library: str,
    store: Store,
    remembered: Mapping[str, RememberedFolder],
    *,
    only: Collection[str] | None = None,
) -> Iterator[tuple[str, Sequence[SourceFile]]]:
    """Yield a library's folders (`only` these, if given) with their files, in folder order: the
    listed folders' from the walk, the kept folders' read from the scan memory a few at a time."""
    listed: dict[str, list[SourceFile]] = {}
    for source in walk.observation.files:
        listed.setdefault(source.rel_path.rpartition("/")[0], []).append(source)
    kept = [folder for folder in walk.kept if remembered.get(folder) is None or remembered[folder].file_count]
    names = sorted(set(listed) | set(kept))
    if only is not None:
        names = [name for name in names if name in only]
    kept_set = set(kept)
    for start in range(0, len(names), KEPT_PAGE):
        page = names[start : start + KEPT_PAGE]
        files = store.load_folder_files(library, [name for name in page if name in kept_set])
        for name in page:
            found = listed.get(name) if name not in kept_set else files.get(name)
            if found:
                yield name, found


KEPT_PAGE = 100  # kept folders whose files are read from the scan memory at once


def _recorded_output_folders(state: AgentState, store: Store) -> set[str]:
    """Return the archive folders the ledger's outputs are in: read once per config generation
    (only a config change names other ones; adoptions and renames, which move rows, read again)."""
    cached = state.recorded_output_folders
    if cached is None or cached[0] != state.config_generation:
        cached = state.recorded_output_folders = (state.config_generation, store.recorded_output_folders())
    return cached[1]


RULE_SKIP = "skip_by_rule"  # a QuietFolder count: its skips that a rule chose


def rule_skips(state: AgentState) -> dict[str, int]:
    """Return, per library planned since the agent started, how many files its rules skip (as
    its folders' last planning found them: a rule's skip records nothing in the ledger)."""
    return {
        library: sum(quiet.counts[RULE_SKIP] for quiet in memory.tallies.values())
        for library, memory in state.planned_folders.items()
    }


@dataclass
class QuietFolder:
    """What a folder's last planning found that stays while nothing changes there: its drift and
    skips (counted in each summary, logged once)."""

    counts: Counter[str] = field(default_factory=Counter)
    reported: set[tuple[str, ...]] = field(default_factory=set)


# Actions after which a folder is planned again next pass: work the agent has yet to do there,
# or did this pass (its ledger rows changed), or files still settling.
_BUSY = (Transcode, Copy, Wait, RenameOutput, Adopt)


@dataclass
class PlannedFolders:
    """What the engine remembers of a library's last planning, so that a pass plans only the
    folders that changed or have work (`_affected`); the others count as they did (`tallies`).
    Planned whole again when the basis (config generation, preset identity) changes, in a full
    pass, and after a pause."""

    basis: tuple[int, str | None]
    busy: set[str] = field(default_factory=set)  # folders planned with work left in them
    tallies: dict[str, QuietFolder] = field(default_factory=dict)  # folders with drift or skips
    tail: QuietFolder | None = None  # the library's "source vanished" drift and problems, last decided

    def forget(self, folders: Collection[str] | None, *, reached: Collection[str]) -> None:
        """Forget what was found in these folders (None: all) before they are planned again,
        and in the folders the walk no longer reached."""
        for known in (self.busy, self.tallies):
            for folder in [folder for folder in known if folders is None or folder in folders or folder not in reached]:
                if isinstance(known, set):
                    known.discard(folder)
                else:
                    del known[folder]

    def note_tail(self, action: Action) -> None:
        """Note an action of the library's tail (drift of vanished sources, the walk's problems)."""
        key = _report_key(action)
        if self.tail is not None and key is not None:
            self.tail.counts[action.kind] += 1
            self.tail.reported.add(key)

    def note(self, action: Action) -> None:
        """Note an action of a planned folder (not the library's tail)."""
        if isinstance(action, _BUSY):
            self.busy.add(_folder_of(action))
        elif isinstance(action, Drift | Skip):
            quiet = self.tallies.setdefault(_folder_of(action), QuietFolder())
            quiet.counts[action.kind] += 1
            if isinstance(action, Skip) and action.by_rule:
                quiet.counts[RULE_SKIP] += 1
            key = _report_key(action)
            if key is not None:
                quiet.reported.add(key)


def _folder_of(action: Transcode | Copy | Wait | RenameOutput | Adopt | Drift | Skip) -> str:
    if isinstance(action, Transcode | Copy | RenameOutput | Adopt):
        return action.source.rel_path.rpartition("/")[0]
    return action.rel_path.rpartition("/")[0]


def _affected(
    memory: PlannedFolders, walk: LibraryWalk, output: str, archive: ArchiveWalk, archive_lost: Collection[str]
) -> set[str]:
    """Return the folders of a library to plan: those the walk listed (changed, settling or marked
    dirty), those with work left, and those whose output folder in the archive changed or is gone."""
    affected = set(walk.listed) | memory.busy
    prefix = output + "/"
    for folder in [*(archive.listed or {}), *archive_lost]:
        if folder == output:
            affected.add("")
        elif folder.startswith(prefix):
            affected.add(folder[len(prefix) :])
    return affected


def _waiting_jobs(store: Store) -> dict[tuple[str, str], list[int]]:
    """Return the queued and failed jobs by file: those no batch wants are cancelled at the end."""
    waiting: dict[tuple[str, str], list[int]] = {}
    for job_id, library, rel_path in store.waiting():
        waiting.setdefault((library, rel_path), []).append(job_id)
    return waiting


def _cancel_unwanted(
    state: AgentState, store: Store, waiting: dict[tuple[str, str], list[int]], *, log: Any, now: datetime
) -> None:
    with store.transaction():
        for (library, rel_path), job_ids in sorted(waiting.items(), key=lambda item: item[1]):
            if library in state.paused_libraries or library in state.held_libraries:
                continue
            for job_id in job_ids:
                store.cancel(job_id, now=now)
                log.info("job cancelled", job=job_id, library=library, path=rel_path, reason="no longer planned")


@dataclass
class _Tally:
    """The pass's counts, summed stretch by stretch (see `PassSummary`)."""

    counts: Counter[str] = field(default_factory=Counter)
    waiting: dict[str, int] = field(default_factory=dict)
    pending: bool = False
    soonest: float | None = None
    transcodes: int = 0

    def add_queued(self, queued: QueuedPlan) -> None:
        self.counts.update(queued.counts())
        self.pending = self.pending or queued.pending
        for action in queued.plan.actions:
            if isinstance(action, Wait):
                self.waiting[action.library] = self.waiting.get(action.library, 0) + 1
                wait = action.stable_in_seconds
                self.soonest = wait if self.soonest is None else min(self.soonest, wait)
            elif isinstance(action, Transcode):
                self.transcodes += 1

    def summary(self, *, finished_at: datetime, seconds: float, observed_at_ns: int) -> PassSummary:
        """Count the plan as `hb2r plan --json` does (transcodes by their job's stage), so that
        /api/status and `hb2r plan` agree on what is pending; note when the first waiting file
        becomes stable (its wait counts from the moment the pass observed it)."""
        counts = {key: self.counts[key] for key in COUNT_KEYS if self.counts[key]}
        stable_at = None if self.soonest is None else datetime.fromtimestamp(observed_at_ns / 1e9 + self.soonest, UTC)
        return PassSummary(finished_at, seconds, counts, self.waiting, self.pending, next_stable_at=stable_at)


@dataclass
class _Acting:
    """Acts on a pass's actions a stretch at a time: renames and adoptions at once, transcodes
    queued (reading at most ENQUEUE_BUDGET fingerprints from disk in the whole pass)."""

    state: AgentState
    store: Store
    log: Any
    stamp: datetime
    waiting: dict[tuple[str, str], list[int]]
    budget: int  # fingerprints the pass may still read from disk
    recent: RecentSeen | None = None  # the scan memory's rows the planner read last (`agent.recent_seen`)
    facts: dict[str, StoredFacts] = field(default_factory=dict)  # what `rule` knew of its stretch's contents
    histories: dict[str, EncodeHistory] = field(default_factory=dict)  # read once a pass, when a job is queued
    queued: int = 0
    tally: _Tally = field(default_factory=_Tally)

    async def act(self, library: str, stretch: list[Action]) -> None:
        to_queue = [action for action in stretch if isinstance(action, Transcode)]
        adoptions = [action for action in stretch if isinstance(action, Adopt)]
        fingerprints = await self._fingerprints(library, [*to_queue, *adoptions])
        known: dict[str, tuple[int, int, str]] = {}
        for action in stretch:
            if isinstance(action, Transcode | Adopt | RenameOutput):
                source = action.source
                found = source.fingerprint or fingerprints.get(source.rel_path)
                if found is not None:
                    known[source.rel_path] = (source.size, source.mtime_ns, found)
        known = self._not_remembered(library, known)
        if known:
            self.store.remember_fingerprints(library, known)
        for action in stretch:
            if isinstance(action, RenameOutput | Adopt):
                self.state.recorded_output_folders = None  # rows moved: read the folders again
            if isinstance(action, RenameOutput):
                _rename(self.state, self.store, action, log=self.log, now=self.stamp)
            elif isinstance(action, Adopt):
                fingerprint = fingerprints.get(action.source.rel_path) or action.source.fingerprint
                _adopt(self.state, self.store, action, fingerprint, log=self.log, now=self.stamp)
        for action in stretch:
            if isinstance(action, Copy):
                await _copy(self.state, self.store, action, log=self.log, now=self.stamp)
        by_file = {(library, rel_path): found for rel_path, found in fingerprints.items()}
        rel_paths = [action.source.rel_path for action in to_queue]
        jobs = self.store.unfinished_of_files(library, rel_paths) if to_queue else []
        settled = {(job.rel_path, job.fingerprint, job.preset_hash) for job in jobs if left_alone_by_enqueue(job)}
        queued = _queue(
            self.state, self.store, to_queue, by_file, settled=settled, saving_of=self._saving, log=self.log,
            now=self.stamp,
        )  # fmt: skip
        self.queued += queued
        for action in to_queue:
            self.waiting.pop((action.library, action.source.rel_path), None)
        hashes = {name: value for name, value in _library_preset_hashes(self.state).items() if value is not None}
        plan = Plan(tuple(stretch))
        if queued:  # jobs queued (and others of their files cancelled): read them as they are now
            jobs = self.store.unfinished_of_files(library, rel_paths)
        self.tally.add_queued(with_jobs(plan, jobs, fingerprints=by_file, preset_hashes=hashes))

    async def rule(self, library: Library, stretch: list[Action]) -> list[Action]:
        """Return the stretch with its transcodes as the library's rules make them (`agent.rules`):
        their fingerprints read (within the pass's budget), each content's facts read from the
        store or probed once (ffprobe in a thread) and kept, whatever it says."""
        transcodes = [action for action in stretch if isinstance(action, Transcode)]
        if not transcodes:
            return stretch
        fresh: set[str] = set()  # the paths whose fingerprint was read from disk now
        read = await self._fingerprints(library.name, list(transcodes), fresh=fresh)
        fingerprints = {
            action.source.rel_path: found
            for action in transcodes
            if (found := action.source.fingerprint or read.get(action.source.rel_path)) is not None
        }
        rel_paths = {fingerprint: rel for rel, fingerprint in fingerprints.items()}
        cached = self.state.facts_cache.known(rel_paths)  # read by an earlier pass (agent.facts_cache)
        stored = self.store.facts_for([fingerprint for fingerprint in rel_paths if fingerprint not in cached])
        known = cached | stored
        unknown = {fp: library.source / rel for fp, rel in rel_paths.items() if fp not in known}
        probed = await asyncio.to_thread(probe_each, unknown, now=self.stamp) if unknown else {}
        if probed or fresh:
            with self.store.transaction():
                for fingerprint, probe in probed.items():
                    self.store.record_facts(fingerprint, facts=probe.facts, error=probe.error, now=self.stamp)
                    if probe.error is not None:
                        self.log.warning("media facts unreadable", library=library.name, error=probe.error)
                if fresh:  # the others are in the scan memory already
                    self.store.remember_fingerprints(
                        library.name,
                        {
                            action.source.rel_path: (action.source.size, action.source.mtime_ns, found)
                            for action in transcodes
                            if action.source.rel_path in fresh and (found := fingerprints.get(action.source.rel_path))
                        },
                    )
        known |= probed
        self.state.facts_cache.keep(stored | probed)  # those from the cache were marked used by `known`
        self.facts = known
        ruled_stretch: list[Action] = []
        for action in stretch:
            content = fingerprints.get(action.source.rel_path) if isinstance(action, Transcode) else None
            if isinstance(action, Transcode) and content is not None:
                decided = ruled(action, known.get(content), library=library)
                # What a rule changed, and a fingerprint read now, carry the fingerprint; a transcode no
                # rule changed finds it in the scan memory again (`_fingerprints`), at no cost.
                if (decided is not action or action.source.rel_path in fresh) and not isinstance(decided, Skip):
                    decided = decided._replace(source=action.source._replace(fingerprint=content))
                action = decided
            ruled_stretch.append(action)
        return ruled_stretch

    def _not_remembered(
        self, library: str, known: dict[str, tuple[int, int, str]]
    ) -> dict[str, tuple[int, int, str]]:
        """Return those of these (size, mtime, fingerprint) by path that the scan memory does not hold
        as they are: a file queued pass after pass costs no write."""
        if not known or self.recent is None:
            return known
        seen = self.recent.kept_in_folders(library, sorted({rel.rpartition("/")[0] for rel in known}))
        return {
            rel: value
            for rel, value in known.items()
            if (row := seen.get(rel)) is None or (row.size, row.mtime_ns, row.fingerprint) != value
        }

    def _saving(self, action: Transcode, fingerprint: str) -> int:
        """Return the bytes this transcode's encode is expected to save (`agent.saving_estimate`)."""
        history = self.histories.get(action.library)
        if history is None:
            history = self.histories[action.library] = history_of(self.store.finished_encodes(action.library))
        known = self.facts.get(fingerprint)
        return estimated_saving(action="transcode", size=action.source.size, known=known, history=history)

    async def _fingerprints(
        self, library: str, actions: list[Transcode | Adopt], *, fresh: set[str] | None = None
    ) -> dict[str, str]:
        """Return the fingerprints of these actions' sources: those the scan memory holds (free),
        and those read from disk while the pass's budget lasts (their paths added to `fresh`)."""
        missing = [action.source for action in actions if action.source.fingerprint is None]
        if not missing:
            return {}
        folders = sorted({source.rel_path.rpartition("/")[0] for source in missing})
        read = self.recent.kept_in_folders if self.recent is not None else self.store.seen_in_folders
        seen = read(library, folders)
        found: dict[str, str] = {}
        to_read: list[SourceFile] = []
        for source in missing:
            remembered = seen.get(source.rel_path)
            if (
                remembered is not None
                and remembered.fingerprint
                and (remembered.size, remembered.mtime_ns)
                == (
                    source.size,
                    source.mtime_ns,
                )
            ):
                found[source.rel_path] = remembered.fingerprint
            elif self.budget > 0:
                self.budget -= 1
                to_read.append(source)
        if to_read:
            configured = next(each for each in self.state.config.libraries if each.name == library)
            filled = await asyncio.to_thread(
                fingerprints_from_disk(configured), to_read, {s.rel_path for s in to_read}, {}
            )
            found.update((source.rel_path, source.fingerprint) for source in filled if source.fingerprint is not None)
            if fresh is not None:
                fresh.update(source.rel_path for source in filled if source.fingerprint is not None)
        return found


def _report_key(action: Action) -> tuple[str, ...] | None:
    """Return what identifies a drift, skip or pause in the log (None for other actions)."""
    if isinstance(action, Drift):
        return ("drift", action.library, action.rel_path, str(action.reason))
    if isinstance(action, Skip):
        return ("skip", action.library, action.rel_path, action.reason)
    if isinstance(action, PauseLibrary):
        return ("pause", action.library, action.reason)
    return None


@dataclass
class _Report:
    """Logs drift, skips and pauses once, when they appear, as the pass meets them."""

    state: AgentState
    log: Any
    current: set[tuple[str, ...]] = field(default_factory=set)

    def add(self, action: Action) -> None:
        key = _report_key(action)
        if key is None:
            return
        if key not in self.state.reported:
            if isinstance(action, Drift):
                self.log.warning("drift", library=action.library, path=action.rel_path, reason=str(action.reason))
            elif isinstance(action, Skip):
                self.log.warning("file skipped", library=action.library, path=action.rel_path, reason=action.reason)
            elif isinstance(action, PauseLibrary):
                self.log.error("library paused", library=action.library, reason=action.reason)
        self.current.add(key)

    def close(self) -> None:
        for key in self.state.reported - self.current:
            if key[0] == "pause":
                self.log.info("library resumed", library=key[1])
        self.state.reported = self.current


async def _walk(
    state: AgentState, store: Store, *, dirty: dict[str, set[str]], now_ns: int, clock: float
) -> tuple[PassWalk, dict[str, dict[str, RememberedFolder]], dict[str, RememberedFolder] | None]:
    """Walk the libraries and the archive, in full where a full pass is due, else listing only
    what changed (`agent.incremental_scan`); return the walks (the kept folders' files left in the
    scan memory), and the remembered folders they were walked against: the libraries' and the
    archive's (None when the archive was walked in full, its memory not read). The walk runs in a
    thread; the store is read on the loop's thread, before and after it."""
    config = state.config
    due = {
        key
        for key in (*(library.name for library in config.libraries), ARCHIVE_WALK)
        if full_pass_due(
            state.full_pass_clock.get(key),
            now=clock,
            interval_seconds=config.scan.full_interval.total_seconds(),
            config_generation=state.config_generation,
        )
    }
    remembered = state.remembered_folders
    folders = {
        library.name: remembered[library.name] if library.name in remembered else store.load_folders(library.name)
        for library in config.libraries
    }
    if ARCHIVE_WALK in due:
        archive_folders = {}
    else:
        archive_folders = remembered[ARCHIVE_WALK] if ARCHIVE_WALK in remembered else store.load_archive_folders()
    walked = await asyncio.to_thread(
        walk_for_pass,
        config,
        recorded_folders=_recorded_output_folders(state, store),
        folders=folders,
        archive_folders=archive_folders,
        now_ns=now_ns,
        full=due - {ARCHIVE_WALK},
        full_archive=ARCHIVE_WALK in due,
        dirty=dirty,
    )
    missed: dict[str, Missed] = {}
    for name, keep in walked.would_keep.items():
        pages = []
        for page in missed_pages(walked.libraries[name], store, name, keep):
            pages.append(page)
            await give_way()  # a page of the memory read
        missed[name] = combined(pages)
    return dataclasses.replace(walked, missed=missed), folders, None if ARCHIVE_WALK in due else archive_folders


def _keep_remembered(state: AgentState, key: str, remembered: dict[str, RememberedFolder], *, full: bool) -> None:
    """Keep the folders a pass recorded for the next pass, unless the walk was full: those were
    made among a million short-lived objects of the walk, and keeping them would keep that memory
    from going back to the system (fragmentation: 240 MB more at a million files). The next pass
    reads them from the store once, into memory of its own."""
    if full:
        state.remembered_folders.pop(key, None)
    else:
        state.remembered_folders[key] = remembered


def forget_another_lead(state: AgentState, epoch: int) -> None:
    """Before a pass under the lead of `epoch`: if this process last passed under another lead,
    another host may have led in between and recorded its own walks, so forget what this process
    remembers of the scan memory and of its last planning; the pass reads and plans afresh."""
    if state.lead_epoch != epoch:
        state.remembered_folders.clear()
        state.planned_folders.clear()
        state.lead_epoch = epoch


def _note_full_passes(
    state: AgentState,
    walked: PassWalk,
    recorded: list[str],
    *,
    archive: bool,
    clock: float,
    stamp: datetime,
    log: Any,
) -> None:
    """Remember when the full passes just recorded ran, and log what each found the memory missed."""
    for name in recorded:
        if name not in walked.full:
            continue
        state.full_pass_clock[name] = (clock, state.config_generation)
        state.full_passes[name] = FullPass(timestamps.stamp(stamp), walked.seconds[name])
        missed = walked.missed.get(name)
        if missed is not None and missed.count:
            log.warning(
                "full pass found changes the scan memory had missed",
                library=name,
                count=missed.count,
                paths=list(missed.examples),
            )
        else:
            log.info("full pass", library=name, seconds=round(walked.seconds[name], 3), missed=0)
    if archive and walked.full_archive:
        state.full_pass_clock[ARCHIVE_WALK] = (clock, state.config_generation)


def update_conditions(state: AgentState, *, now: datetime) -> dict[str, Condition]:
    """Recompute each library's condition, keeping `since` while it stays the same; return them."""
    by_library = state.store.counts_by_library()
    waiting = state.last_pass.waiting if state.last_pass else {}
    current: dict[str, Condition] = {}
    for library in state.config.libraries:
        name = library.name
        hold = state.held_libraries.get(name)
        condition = library_condition(
            broken=state.broken_libraries.get(name) or state.unpublishable_libraries.get(name),
            paused=state.paused_libraries.get(name),
            held=None if hold is None else hold.reason,
            held_since=None if hold is None else datetime.fromisoformat(hold.since),
            counts=by_library.get(name, {}),
            waiting=waiting.get(name, 0),
            scanned=state.last_pass is not None,
            previous=state.conditions.get(name),
            now=now,
        )
        current[name] = condition
        _notify_condition(state, name, previous=state.conditions.get(name), now=condition)
    state.conditions = current
    return current


def _notify_condition(state: AgentState, library: str, *, previous: Condition | None, now: Condition) -> None:
    """Tell the operator when a library becomes paused or in error, or its reason changes (at start too)."""
    unchanged = previous is not None and (previous.status, previous.reason) == (now.status, now.reason)
    if now.status not in (PAUSED, ERROR) or unchanged:
        return
    make = notify_events.library_error if now.status == ERROR else notify_events.library_paused
    state.notify(make(library=library, reason=now.reason, host=state.config.host.name))


def _queue(
    state: AgentState,
    store: Store,
    to_queue: list[Transcode],
    fingerprints: dict[tuple[str, str], str],
    *,
    settled: Collection[tuple[str, str, str]] = (),
    saving_of: Callable[[Transcode, str], int] | None = None,
    log: Any,
    now: datetime,
) -> int:
    """Queue a job for each transcode whose fingerprint is known; return how many were queued.
    `settled`: the (path, fingerprint, preset identity) whose job `enqueue` would leave as it is
    (`agent.store.jobs.left_alone_by_enqueue`): nothing to check or write for them."""
    hashes = _library_preset_hashes(state)
    queued = 0
    with store.transaction():
        for action in to_queue:
            fingerprint = action.source.fingerprint or fingerprints.get((action.library, action.source.rel_path))
            # a preset a rule or `hdr:` chose: the job's identity names it, and the dispatcher encodes with it
            chosen = action.preset
            library = next(each for each in state.config.libraries if each.name == action.library)
            preset_hash = (
                hashes.get(action.library) if chosen is None else library_identity(library, state.preset_hashes, chosen)
            )
            if fingerprint is None or preset_hash is None:
                continue  # not read yet (budget, or vanished since the scan): a later pass queues it
            if (action.source.rel_path, fingerprint, preset_hash) in settled:
                continue
            if _encoded_since_the_scan(state, store, action, fingerprint, preset_hash):
                continue
            job = store.enqueue(
                library=action.library,
                rel_path=action.source.rel_path,
                fingerprint=fingerprint,
                preset_hash=preset_hash,
                output_path=action.output_path,
                reason=str(action.reason),
                now=now,
                saving=0 if saving_of is None else saving_of(action, fingerprint),
            )
            if job is not None:
                queued += 1
                log.info("job queued", job=job.id, library=job.library, path=job.rel_path, reason=job.reason)
    return queued


def _encoded_since_the_scan(
    state: AgentState, store: Store, action: Transcode, fingerprint: str, preset_hash: str
) -> bool:
    """Return whether the dispatcher published this very content while the pass was scanning.

    The plan was made from the ledger as it was at the start of the pass; a job that finished
    since then must not be queued again (enqueue reopens a done job, for an output that went
    missing). Published means recorded in the ledger now, with its output in place. The job's
    row is held first (until the pass's transaction ends): a publish in flight on another host
    is waited for and seen, and none can land between this check and the enqueue.
    """
    store.hold_identity(
        library=action.library, rel_path=action.source.rel_path, fingerprint=fingerprint, preset_hash=preset_hash
    )
    recorded = store.records(
        library=action.library,
        rel_path=action.source.rel_path,
        fingerprint=fingerprint,
        preset_hash=preset_hash,
    )
    return recorded and (state.config.paths.archive / action.output_path).exists()


def _rename(state: AgentState, store: Store, action: RenameOutput, *, log: Any, now: datetime) -> None:
    config = state.config
    folder = action.from_rel_path.rpartition("/")[0]
    old = store.ledger_in_folders(action.library, [folder]).get(action.from_rel_path)
    if old is None:
        return
    # The move happens inside the (fenced) transaction: a pass that no longer leads moves nothing.
    with store.transaction():
        try:
            if action.from_output_path != action.output_path:
                publish.move_output(
                    config.paths.archive,
                    action.from_output_path,
                    action.output_path,
                    access=archive_checks.access(config),
                )
        except (OSError, publish.PublishConflict) as error:
            log.warning("rename failed", library=action.library, path=action.source.rel_path, error=str(error))
            return
        size = store.output_size(library=action.library, rel_path=action.from_rel_path)
        was_adopted = store.adopted(library=action.library, rel_path=action.from_rel_path)
        store.forget(library=action.library, rel_path=action.from_rel_path)
        store.record_output(
            _entry_of(action, fingerprint=old.fingerprint, preset_hash=old.preset_hash),
            encoded_at=timestamps.stamp(now),
            output_size=size,
            adopted=was_adopted,
        )
    log.info("output renamed", library=action.library, path=action.source.rel_path, output=action.output_path)


def _entry_of(action: RenameOutput | Adopt | Copy, *, fingerprint: str, preset_hash: str) -> LedgerEntry:
    """The ledger row of an action's source and output, with this content and identity."""
    return LedgerEntry(
        action.library, action.source.rel_path, fingerprint, action.source.size, action.source.mtime_ns,
        preset_hash, action.output_path,
    )  # fmt: skip


def _adopt(
    state: AgentState, store: Store, action: Adopt, fingerprint: str | None, *, log: Any, now: datetime
) -> None:
    preset_hash = _library_preset_hashes(state).get(action.library)
    if action.from_library is None and (fingerprint is None or preset_hash is None):
        return
    try:
        output_size: int | None = (state.config.paths.archive / action.output_path).stat().st_size
    except OSError:
        output_size = None
    configured = {library.name for library in state.config.libraries}
    with store.transaction():
        holder = store.output_holder(action.output_path)
        if holder in configured:
            return  # the dispatcher published it while this pass was scanning: it is ours, not adopted
        if holder is not None and holder == action.from_library:  # the library was renamed in the config
            store.carry_over(
                output_path=action.output_path,
                library=action.library,
                rel_path=action.source.rel_path,
                size=action.source.size,
                mtime_ns=action.source.mtime_ns,
            )
            log.info(
                "output carried over",
                library=action.library,
                path=action.source.rel_path,
                output=action.output_path,
                from_library=holder,
            )
            return
        if fingerprint is None or preset_hash is None:
            return
        store.forget_output(action.output_path)  # recorded under a library no longer configured
        store.record_output(
            _entry_of(action, fingerprint=fingerprint, preset_hash=preset_hash),
            encoded_at=timestamps.stamp(now),
            output_size=output_size,
            # hb2r's own output, published just before a crash kept its job from being marked done
            adopted=not store.awaited_by_a_job(
                library=action.library,
                rel_path=action.source.rel_path,
                fingerprint=fingerprint,
                output_path=action.output_path,
            ),
        )
    log.info("output adopted", library=action.library, path=action.source.rel_path, output=action.output_path)


async def _copy(state: AgentState, store: Store, action: Copy, *, log: Any, now: datetime) -> None:
    """Publish a source itself (`agent.publish_copy`, in a thread) and record it in the ledger
    with the library's preset identity, so that it is in sync, not encoded, from then on."""
    config = state.config
    preset_hash = _library_preset_hashes(state).get(action.library)
    library = next(each for each in config.libraries if each.name == action.library)
    fingerprint = action.source.fingerprint
    if fingerprint is None or preset_hash is None:
        return  # not read yet (the pass's budget): a later pass copies it
    archive = config.paths.archive
    instance = publish.instance_tag(config.paths.state_dir)
    temp = archive / publish.PARTIAL_DIR / f"{instance}-copy-{fingerprint.replace(':', '-')}"
    try:
        publish.prepare_partial_dir(archive)
        how = await asyncio.to_thread(
            publish_copy, library.source / action.source.rel_path, archive / action.output_path, temp=temp,
            access=archive_checks.access(config), may_replace=store.made_output(action.output_path),
        )  # fmt: skip
    except (OSError, publish.PublishConflict) as error:
        log.warning("copy failed", library=action.library, path=action.source.rel_path, error=str(error))
        return
    with store.transaction():
        store.forget_output(action.output_path)  # a vanished source's, taken over
        store.record_output(
            _entry_of(action, fingerprint=fingerprint, preset_hash=COPY_MARK + decided_identity(preset_hash, library)),
            encoded_at=timestamps.stamp(now),
            output_size=action.source.size,
        )
    state.recorded_output_folders = None  # a new output folder may have appeared
    log.info("source copied", library=action.library, path=action.source.rel_path, output=action.output_path,
             how=how, why=action.why)  # fmt: skip


def _library_preset_hashes(state: AgentState) -> dict[str, str | None]:
    """Return each library's preset identity (None where HandBrakeCLI could not tell it)."""
    return {library.name: library_identity(library, state.preset_hashes) for library in state.config.libraries}


async def check_archive(state: AgentState, *, log: Any) -> None:
    """Check what the archive must be like for outputs to be published (agent.archive_checks);
    log each problem when it appears and when it clears."""
    unpublishable, problems = await asyncio.to_thread(archive_checks.check, state.config)
    for kind, before, after in (
        ("library cannot publish", state.unpublishable_libraries, unpublishable),
        ("archive problem", state.archive_problems, problems),
    ):
        for key, reason in after.items():
            if before.get(key) != reason:
                log.error(kind, key=key, reason=reason)
        for key in before.keys() - after.keys():
            log.info(f"{kind}: cleared", key=key)
    state.unpublishable_libraries, state.archive_problems = unpublishable, problems
