"""The reconcile pass: observe -> plan -> act on what is quick, queue what is slow.

Each pass recomputes the whole plan from the config, the disk and the ledger (level-
triggered), then:
- records what the scan saw (stability and the vanish breaker survive restarts);
- applies renames (one atomic move) and adoptions (a ledger row) at once (users are brought
  in line by `agent.auth.sync_users` at start and on each reload, when the config changes);
- turns transcodes into jobs, one per (library, path, fingerprint, preset) identity;
- cancels queued jobs the plan no longer wants (the file changed again, or is in sync).
Encoding itself is the dispatcher's (`worker.py`).

Choices:
- Fingerprints of new files are read when they are queued, at most ENQUEUE_BUDGET files a
  pass, so the first pass over a big library does not read three MiB of every file before
  the first encode starts; the rest are queued by later passes (fingerprints already in the
  scan memory cost nothing and do not count).
- An adopted output is recorded with the current preset's identity: hb2r did not make it,
  so it cannot know better, and it will not re-encode what an operator put there. An output
  recorded under a library the config no longer has is taken over the same way; one the
  planner recognised as a renamed library's (`Adopt.from_library`) keeps its entry, moved.
- Drift, skips and paused libraries are logged when they first appear, not every pass.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agent import archive_checks, publish
from agent.conditions import Condition, library_condition
from agent.config.models import Config
from agent.domain import (
    Adopt,
    Drift,
    Ledger,
    LedgerEntry,
    Observation,
    PauseLibrary,
    Plan,
    RenameOutput,
    Skip,
    Transcode,
    Wait,
)
from agent.incremental_scan import full_pass_due, what_to_record
from agent.mounts import WatchStatus
from agent.observe import PassWalk, walk_for_pass, with_fingerprints, with_memory, with_needed_fingerprints
from agent.plan import plan
from agent.queued_plan import QueuedPlan, transcoded_files, with_jobs
from agent.store.holds import Hold
from agent.store.jobs import Job
from agent.store.protocol import Store
from agent.store.scans import FullPass

ENQUEUE_BUDGET = 500
ARCHIVE_WALK = "/archive"  # the archive's key in EngineState.full_pass_clock (no library is named so)


@dataclass
class EngineState:
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
    state: EngineState,
    *,
    log: Any,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    store: Store | None = None,
) -> Plan:
    """Run one pass: observe, plan, apply what is quick, queue what is slow; return the plan.

    `store` is what the pass reads and writes through (default: the state's): the leader's
    fenced view (`Store.fenced`), whose every transaction raises NotLeader, having written
    nothing, once this host no longer leads; the pass then stops there.
    """
    config = state.config
    store = state.store if store is None else store
    started = time.monotonic()
    dirty, state.dirty_folders = state.dirty_folders, {}
    remembered = store.load_ledger()
    now_ns = time.time_ns()
    walked, observation = await _walk(state, store, remembered, dirty=dirty, now_ns=now_ns, clock=started)
    result = plan(config, observation, remembered, now_ns=now_ns)
    to_queue = [action for action in result.actions if isinstance(action, Transcode)]
    adoptions = [action for action in result.actions if isinstance(action, Adopt)]
    wanted = _fingerprints_to_read([*to_queue, *adoptions], remembered)
    observation = await asyncio.to_thread(with_fingerprints, config, observation, wanted, remembered)
    fingerprints = {
        (name, source.rel_path): source.fingerprint
        for name, observed in observation.libraries.items()
        for source in observed.files
        if source.fingerprint is not None
    }
    stamp = now()
    state.paused_libraries = {
        action.library: action.reason for action in result.actions if isinstance(action, PauseLibrary)
    }
    recorded = []
    with store.transaction():
        for name, observed in observation.libraries.items():
            if name not in state.paused_libraries:  # a paused scan must not become the vanish baseline
                walk = walked.libraries[name]
                listed, known = what_to_record(walk, observed.files)
                store.record_walk(
                    library=name,
                    listed=listed,
                    folders=walk.folders,
                    fingerprints=known,
                    now_ns=now_ns,
                    scanned_at=stamp.isoformat(),
                    full_seconds=walked.seconds[name] if name in walked.full else None,
                )
                recorded.append(name)
        if observation.archive.available:
            store.record_archive(folders=walked.archive.folders, listed=walked.archive.listed or {})
    _note_full_passes(state, walked, recorded, archive=observation.archive.available, clock=started, stamp=stamp,
                      log=log)  # fmt: skip
    for action in result.actions:
        if isinstance(action, RenameOutput):
            _rename(state, store, action, remembered.entries, log=log, now=stamp)
        elif isinstance(action, Adopt):
            fingerprint = fingerprints.get((action.library, action.source.rel_path))
            _adopt(state, store, action, fingerprint, log=log, now=stamp)
    await check_archive(state, log=log)
    _queue(state, store, to_queue, fingerprints, log=log, now=stamp)
    _report(state, result, log=log)
    queued = with_jobs(
        result,
        jobs_of_transcodes(store, result),
        fingerprints=fingerprints,
        preset_hashes={name: value for name, value in _library_preset_hashes(state).items() if value is not None},
    )
    state.last_pass = _summary(queued, finished_at=now(), seconds=time.monotonic() - started, observed_at_ns=now_ns)
    update_conditions(state, now=state.last_pass.finished_at)
    return result


async def _walk(
    state: EngineState, store: Store, remembered: Ledger, *, dirty: dict[str, set[str]], now_ns: int, clock: float
) -> tuple[PassWalk, Observation]:
    """Walk the libraries and the archive, in full where a full pass is due, else listing only
    what changed (`agent.incremental_scan`); return the walks and the Observation to plan from.
    The walk runs in a thread; the store is read on the loop's thread, before and after it."""
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
    folders = {library.name: store.load_folders(library.name) for library in config.libraries}
    archive_folders = {} if ARCHIVE_WALK in due else store.load_archive_folders()
    walked = await asyncio.to_thread(
        walk_for_pass,
        config,
        remembered,
        folders=folders,
        archive_folders=archive_folders,
        now_ns=now_ns,
        full=due - {ARCHIVE_WALK},
        full_archive=ARCHIVE_WALK in due,
        dirty=dirty,
    )
    walked = with_memory(walked, config, store, folders=folders, archive_folders=archive_folders)
    observation = await asyncio.to_thread(
        with_needed_fingerprints, config, walked.observation(state.preset_hashes), remembered, now_ns=now_ns
    )
    return walked, observation


def _note_full_passes(
    state: EngineState,
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
        state.full_passes[name] = FullPass(stamp.isoformat(), walked.seconds[name])
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


def jobs_of_transcodes(store: Store, result: Plan) -> list[Job]:
    """Return the unfinished jobs of the files the plan transcodes (all that `with_jobs` pairs),
    read by file through an index rather than every unfinished job of the queue."""
    return [
        job for library, paths in transcoded_files(result).items() for job in store.unfinished_of_files(library, paths)
    ]


def _summary(queued: QueuedPlan, *, finished_at: datetime, seconds: float, observed_at_ns: int) -> PassSummary:
    """Count the plan as `hb2r plan --json` does (transcodes by their job's stage), so that
    /api/status and `hb2r plan` agree on what is pending; note when the first waiting file
    becomes stable (its wait counts from the moment the pass observed it)."""
    counts = {key: count for key, count in queued.counts().items() if count}
    waiting: dict[str, int] = {}
    soonest: float | None = None
    for action in queued.plan.actions:
        if isinstance(action, Wait):
            waiting[action.library] = waiting.get(action.library, 0) + 1
            soonest = action.stable_in_seconds if soonest is None else min(soonest, action.stable_in_seconds)
    stable_at = None if soonest is None else datetime.fromtimestamp(observed_at_ns / 1e9 + soonest, UTC)
    return PassSummary(finished_at, seconds, counts, waiting, queued.pending, next_stable_at=stable_at)


def update_conditions(state: EngineState, *, now: datetime) -> dict[str, Condition]:
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
    state.conditions = current
    return current


def _fingerprints_to_read(actions: list[Transcode | Adopt], remembered: Ledger) -> set[tuple[str, str]]:
    """Return the files whose fingerprint the pass needs: all that the scan memory holds (free),
    and up to ENQUEUE_BUDGET that must be read from disk."""
    cached: set[tuple[str, str]] = set()
    to_read: list[tuple[str, str]] = []
    for action in actions:
        source = action.source
        if source.fingerprint is not None:
            continue
        key = (action.library, source.rel_path)
        seen = remembered.seen.get(key)
        if seen is not None and seen.fingerprint and (seen.size, seen.mtime_ns) == (source.size, source.mtime_ns):
            cached.add(key)
        elif len(to_read) < ENQUEUE_BUDGET:
            to_read.append(key)
    return cached | set(to_read)


def _queue(
    state: EngineState,
    store: Store,
    to_queue: list[Transcode],
    fingerprints: dict[tuple[str, str], str],
    *,
    log: Any,
    now: datetime,
) -> None:
    hashes = _library_preset_hashes(state)
    queued = 0
    with store.transaction():
        for action in to_queue:
            fingerprint = action.source.fingerprint or fingerprints.get((action.library, action.source.rel_path))
            preset_hash = hashes.get(action.library)
            if fingerprint is None or preset_hash is None:
                continue  # not read yet (budget, or vanished since the scan): a later pass queues it
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
            )
            if job is not None:
                queued += 1
                log.info("job queued", job=job.id, library=job.library, path=job.rel_path, reason=job.reason)
        wanted = {(action.library, action.source.rel_path) for action in to_queue}
        for job_id, library, rel_path in store.waiting():
            if library in state.paused_libraries or library in state.held_libraries or (library, rel_path) in wanted:
                continue
            store.cancel(job_id, now=now)
            log.info("job cancelled", job=job_id, library=library, path=rel_path, reason="no longer planned")
    if queued:
        log.info("pass queued jobs", count=queued, planned=len(to_queue))


def _encoded_since_the_scan(
    state: EngineState, store: Store, action: Transcode, fingerprint: str, preset_hash: str
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


def _rename(
    state: EngineState,
    store: Store,
    action: RenameOutput,
    entries: tuple[LedgerEntry, ...],
    *,
    log: Any,
    now: datetime,
) -> None:
    config = state.config
    old = next(
        (entry for entry in entries if entry.library == action.library and entry.rel_path == action.from_rel_path), None
    )
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
            LedgerEntry(
                library=action.library,
                rel_path=action.source.rel_path,
                fingerprint=old.fingerprint,
                size=action.source.size,
                mtime_ns=action.source.mtime_ns,
                preset_hash=old.preset_hash,
                output_path=action.output_path,
            ),
            encoded_at=now.isoformat(),
            output_size=size,
            adopted=was_adopted,
        )
    log.info("output renamed", library=action.library, path=action.source.rel_path, output=action.output_path)


def _adopt(
    state: EngineState, store: Store, action: Adopt, fingerprint: str | None, *, log: Any, now: datetime
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
            LedgerEntry(
                library=action.library,
                rel_path=action.source.rel_path,
                fingerprint=fingerprint,
                size=action.source.size,
                mtime_ns=action.source.mtime_ns,
                preset_hash=preset_hash,
                output_path=action.output_path,
            ),
            encoded_at=now.isoformat(),
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


def _report(state: EngineState, result: Plan, *, log: Any) -> None:
    """Log drift, skips and pauses once, when they appear."""
    current: set[tuple[str, ...]] = set()
    for action in result.actions:
        if isinstance(action, Drift):
            key: tuple[str, ...] = ("drift", action.library, action.rel_path, str(action.reason))
            if key not in state.reported:
                log.warning("drift", library=action.library, path=action.rel_path, reason=str(action.reason))
        elif isinstance(action, Skip):
            key = ("skip", action.library, action.rel_path, action.reason)
            if key not in state.reported:
                log.warning("file skipped", library=action.library, path=action.rel_path, reason=action.reason)
        elif isinstance(action, PauseLibrary):
            key = ("pause", action.library, action.reason)
            if key not in state.reported:
                log.error("library paused", library=action.library, reason=action.reason)
        else:
            continue
        current.add(key)
    for key in state.reported - current:
        if key[0] == "pause":
            log.info("library resumed", library=key[1])
    state.reported = current


def _library_preset_hashes(state: EngineState) -> dict[str, str | None]:
    """Return each library's preset identity (None where HandBrakeCLI could not tell it)."""
    return {library.name: state.preset_hashes.get(library.preset) for library in state.config.libraries}


async def check_archive(state: EngineState, *, log: Any) -> None:
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
