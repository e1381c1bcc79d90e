"""The dispatcher's runner: gathers each tick's facts, asks `agent.dispatch_decisions` what to do, does it.

The decisions (which job starts, which encode is suspended, resumed, cancelled or failed as
hung, and what becomes of an encode that ended) are the pure functions of `agent.dispatch_decisions`;
its docstring has the rules. This module carries their commands out: processes, temp
files, SQLite writes, logs and metrics.

A job's life here: claim (a lease with a fencing token, `agent.store.leases`; on SQLite too,
so one host and many run the same code) -> HandBrakeCLI writes
`<archive>/.hb2r-partial/<host>-<instance>-<id>-<token>.<ext>` -> verify (exit code, WorkDone,
size, duration; the whole decode where `verify.decode` asks) -> in ONE transaction: ledger
row and job done only while the token still holds the job (`finish_claimed`), and the
atomic move into place. If the process dies between the move and the commit, the next pass
finds an output with no ledger row and adopts it; if it dies before the move, the job is
requeued at start and its temp file removed.
Either way exactly one output.
A job whose source is gone, or in which HandBrakeCLI finds no title, is dead at once.

The runner ticks every TICK_SECONDS (sooner when woken: a pass queued work, a job ended).
Each tick first renews this host's due leases, then gives back the jobs whose hosts stopped
renewing theirs (`expire_leases`: idempotent, so every host does it). Progress is kept in memory and written
at most every PROGRESS_WRITE_SECONDS per job, by a heartbeat that also renews the lease; a
heartbeat runs at least every lease/3 (`dispatch_decisions.heartbeat_due`) from the tick and from a
timer of its own, and carries what the encode has yet to write into the archive, so that every
host's gate counts every host's encodes. A heartbeat that finds the job cancelled elsewhere
stops it as an operator's cancel does; one that finds it lost kills the encode at once and
removes its temp file: nothing is published or recorded by this host (failures are fenced by
the token too). A host that cannot read a library's folder, or cannot start HandBrakeCLI,
gives the job back with no attempt spent and claims no more from that library (or at all)
until it can again (`unreadable_here`, `encoder_problem`; both shown by /health). Stopping
gives this host's claims back at once (`release_claim`), for another host to take. A failure
that could not be recorded (SQLite busy or failing) is kept and handed to the next tick's
decision until it is recorded. A stall is logged, counted in the metrics
(outcome "stalled") and shown by /health until its job next ends otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent import archive_checks, descriptors, dispatch_decisions, gate, history, publish
from agent.batch_plan import COPY_MARK, SKIP_MARK
from agent.config.models import Config, Library
from agent.config.rules import LargerOutput
from agent.domain import LedgerEntry
from agent.engine import AgentState
from agent.handbrake.command import encode_argv
from agent.handbrake.decode import decode_whole
from agent.handbrake.mux import muxed_bytes
from agent.handbrake.probe import media_duration, media_end
from agent.handbrake.progress import Progress
from agent.handbrake.runner import Encode, EncodeResult
from agent.handbrake.tracks import track_options
from agent.identity import copy_output_path, decided_identity, library_identity
from agent.notify import events as notify_events
from agent.publish_copy import stage as stage_copy
from agent.resources import cpu_count
from agent.rules import AfterEncode, after_encode
from agent.store import StoreError, jobs
from agent.store.history import Outcome
from agent.store.jobs import LeaseLost
from agent.store.order import QueueOrder
from agent.store.transitions import UNFINISHED
from agent.timestamps import stamp
from agent.verify import FailureKind, Verification, decode_verdict, verify
from agent.wording import human_size

TICK_SECONDS = 2.0
PROGRESS_WRITE_SECONDS = 5.0
CANCEL_GRACE_SECONDS = 5.0
DECODE_POLL_SECONDS = 0.5  # how soon a decode check notices a cancel or a stop


class SampleSource(Protocol):
    def sample(self) -> gate.Sample: ...


@dataclass
class Running:
    job: jobs.Job
    task: asyncio.Task[None] | None = None
    encode: Encode | None = None
    progress: float = 0.0
    fps: float | None = None
    eta_seconds: int | None = None
    suspended: bool = False
    cancelled: bool = False  # cancelled (operator, or library removed): whatever the encode made is thrown away
    started: float = field(default_factory=time.monotonic)
    estimated_output: int = 0  # bytes the gate reserved for its output
    temp: Path | None = None  # its temp file, once HandBrakeCLI was given one
    last_progress: float = field(default_factory=time.monotonic)  # when progress last moved (or it resumed)
    stalled: bool = False  # the watchdog killed it
    stall_reason: str | None = None  # why the watchdog killed it
    token: int | None = None  # its lease's fencing token
    last_heartbeat: float = field(default_factory=time.monotonic)  # when its lease was last renewed
    lost: bool = False  # its lease is no longer this host's: thrown away, nothing recorded
    progressed: bool = False  # HandBrakeCLI has reported progress
    ended: bool = False  # HandBrakeCLI has ended: heartbeats carry no progress while it is verified

    def as_encoding(self) -> dispatch_decisions.Encoding:
        """Return this encode as the plain values the decisions take."""
        return dispatch_decisions.Encoding(
            job_id=self.job.id,
            library=self.job.library,
            started=self.started,
            last_progress=self.last_progress,
            progress=self.progress,
            suspended=self.suspended,
            has_process=self.encode is not None,
            stopping=self.cancelled or self.stalled,
        )


@dataclass(frozen=True)
class _Failure:
    """A failure to record again: recording it raised (SQLite busy or failing)."""

    job: jobs.Job
    reason: str
    stderr_tail: tuple[str, ...]
    kind: FailureKind
    token: int | None = None


class JobObserver(Protocol):
    """Told how each encode ended (for metrics)."""

    def job_finished(
        self, *, library: str, outcome: str, seconds: float, bytes_read: int, bytes_written: int
    ) -> None: ...
    def larger_output(self, *, library: str, then: str) -> None: ...


class Dispatcher:
    def __init__(
        self, state: AgentState, *, log: Any, sampler: SampleSource, observer: JobObserver | None = None
    ) -> None:
        self.state = state
        self.log = log
        self.sampler = sampler
        self.observer = observer
        self.running: dict[int, Running] = {}
        self.last_sample: gate.Sample | None = None
        self._sampled_at = 0.0
        self.short_of_resources = False  # the last refusal was for CPU, memory or disk space
        self.stopping = False
        self._wake = asyncio.Event()
        self._blocked: tuple[str, ...] = ()
        self._strained = False  # the last verdict refused for CPU or memory use: hysteresis applies
        self._cores = cpu_count()
        self._shortage = descriptors.OncePerInterval(log)
        self.stalls: dict[int, str] = {}  # job id -> what /health says of its stall, until it ends otherwise
        self._unrecorded: dict[int, _Failure] = {}
        self._stopping_tasks: set[asyncio.Task[None]] = set()
        self.unreadable_here: dict[str, str] = {}  # library -> why this host cannot read it (no claims from it)
        self.encoder_problem: str | None = None  # why HandBrakeCLI cannot start here (no claims at all)
        self._encoder_seen: tuple[str, int, int, int] | None = None  # the binary as it was when it failed
        self._available: frozenset[str] = frozenset()
        self._archive_low = False  # the last sample found the archive below min_free_disk (told once per drop)
        self._queue_history = history.QueueSampler()  # the queue's length per day (agent.history)

    @property
    def host(self) -> str:
        return self.state.config.host.name

    @property
    def lease(self) -> float:
        """The lease, in seconds."""
        return self.state.config.store.lease.total_seconds()

    @property
    def blocked_reasons(self) -> tuple[str, ...]:
        """Why the last tick started no job although one was waiting (empty: none held back)."""
        return self._blocked

    def take_sample(self) -> gate.Sample:
        """Measure the host (cheap, non-blocking) and remember it for status readers."""
        self.last_sample = self.sampler.sample()
        self._sampled_at = time.monotonic()
        return self.last_sample

    def sample_age(self) -> float:
        """Seconds since the last sample (infinite if none)."""
        return time.monotonic() - self._sampled_at if self.last_sample is not None else float("inf")

    async def cancel_job(self, job_id: int) -> jobs.Job:
        """Cancel a queued, running or failed job for an operator, stopping its encode; return it.

        Raise jobs.JobNotFound or jobs.JobStateError as `jobs.cancel` does.
        """
        job = self.state.store.cancel(job_id, now=datetime.now(UTC), by=jobs.CancelledBy.OPERATOR)
        entry = self.running.get(job_id)
        if entry is not None:
            entry.cancelled = True
            if entry.encode is not None:
                await entry.encode.cancel(grace=CANCEL_GRACE_SECONDS)
            elif entry.task is not None:
                entry.task.cancel()
        self.wake()
        return job

    def wake(self) -> None:
        """Ask for a gate decision now (a pass queued work, a job ended)."""
        self._wake.set()

    async def loop(self) -> None:
        """Tick until stopped, renewing leases in between; a failing tick is logged, never fatal."""
        beating = asyncio.create_task(self._heartbeats(), name="heartbeats")
        try:
            await self._ticks()
        finally:
            beating.cancel()

    async def _heartbeats(self) -> None:
        """Renew the running jobs' leases when due, whatever a tick is waiting for."""
        while not self.stopping:
            try:
                self.heartbeat()
            except Exception:
                self.log.exception("heartbeat failed")
            await asyncio.sleep(min(TICK_SECONDS, self.lease / 6))

    async def _ticks(self) -> None:
        while not self.stopping:
            try:
                self.tick()
            except Exception as error:
                if descriptors.is_shortage(error):  # logged once a minute, not every tick
                    self._shortage.report("dispatcher tick failed: out of file descriptors", reason=str(error))
                else:
                    self.log.exception("dispatcher tick failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), TICK_SECONDS)

    def tick(self) -> None:
        """Gather the tick's facts, decide (`agent.dispatch_decisions.decide`) and carry the commands out."""
        if self.stopping:
            return
        config = self.state.config
        self.heartbeat()  # first: after a stall of this process, its own leases are renewed before any expires
        self._expire_leases()
        self._fold_tallies()
        self._recheck_here()
        sample = self.take_sample()
        self._note_archive_space(sample)
        clock = time.monotonic()
        for entry in self.running.values():
            if entry.suspended or entry.ended:
                entry.last_progress = clock  # suspended is waiting, and verifying (a decode check) not stuck
        self._forget_settled_stalls()
        configured = frozenset(library.name for library in config.libraries)
        unavailable = dispatch_decisions.unavailable_libraries(
            configured=configured,
            paused=self.state.paused_libraries,
            broken=self.state.broken_libraries,
            held=self.state.held_libraries,
            unpublishable=self.state.unpublishable_libraries,
            unreadable_here=self.unreadable_here,
        )
        self._available = configured - unavailable
        job = self.state.store.next_runnable(
            now=datetime.now(UTC),
            library_order=[library.name for library in config.libraries],
            exclude_libraries=unavailable,
            order=queue_order(config),
        )
        waiting = {} if job is None else {job.id: job}
        candidates = tuple(
            dispatch_decisions.Candidate(job.id, job.library, _source_size(config, job)) for job in waiting.values()
        )
        unrecorded = tuple(
            dispatch_decisions.Unrecorded(job_id, failure.kind, failure.reason, failure.stderr_tail)
            for job_id, failure in self._unrecorded.items()
        )
        decision = dispatch_decisions.decide(
            dispatch_decisions.Tick(
                now=clock,
                minute_of_day=_minute_of_day(),
                sample=sample,
                limits=config.limits,
                cpu_count=self._cores,
                stall_timeout=config.handbrake.stall_timeout.total_seconds(),
                configured=configured,
                available=configured - unavailable,
                running=tuple(entry.as_encoding() for entry in self.running.values()),
                candidates=candidates,
                unrecorded=unrecorded,
                strained=self._strained,
                reserved=gate.reserved_space(archive_checks.written_so_far(self.running.values()))
                + self.state.store.remaining_bytes(other_than=self.host),
                encoder_problem=self.encoder_problem,
            )
        )
        for command in decision.commands:
            self._carry_out(command, waiting=waiting)
        self._strained = decision.strained
        self.short_of_resources = decision.short_of_resources
        self._set_blocked(decision.blocked)
        self._queue_history.sample(self.state.store, now=datetime.now(UTC), log=self.log)

    def _carry_out(self, command: dispatch_decisions.Command, *, waiting: dict[int, jobs.Job]) -> None:
        """Do what a tick's command says; `waiting` holds the runnable jobs the tick was given."""
        entry = self.running.get(command.job_id)
        match command:
            case dispatch_decisions.Fail() if command.job_id in self._unrecorded:
                failure = self._unrecorded.pop(command.job_id)  # _fail keeps it again if it still cannot
                with contextlib.suppress(jobs.JobError):  # no longer running (cancelled, requeued): nothing to record
                    self._fail(failure.job, command.reason, command.stderr_tail, kind=command.kind, token=failure.token)
            case dispatch_decisions.Fail(stalled=True) if entry is not None:
                entry.stalled, entry.stall_reason = True, command.reason
                self.log.warning(
                    "job stalled",
                    job=entry.job.id,
                    library=entry.job.library,
                    path=entry.job.rel_path,
                    seconds_without_progress=round(time.monotonic() - entry.last_progress),
                    percent=round(entry.progress, 1),
                )
                job = entry.job
                self.state.notify(notify_events.encode_stalled(
                    job_id=job.id, library=job.library, path=job.rel_path, host=self.host,
                    seconds=round(time.monotonic() - entry.last_progress), percent=entry.progress,
                ))  # fmt: skip
                self._stop_encode(entry)
            case dispatch_decisions.Suspend() if entry is not None and entry.encode is not None:
                entry.encode.suspend()
                entry.suspended = True
                self.log.warning("job suspended", job=entry.job.id, reason=command.reason)
            case dispatch_decisions.Resume() if entry is not None and entry.encode is not None:
                entry.encode.resume()
                entry.suspended = False
                self.log.info("job resumed", job=entry.job.id, reason=command.reason)
            case dispatch_decisions.Cancel() if entry is not None:
                entry.cancelled = True  # _encode throws away whatever it made
                with contextlib.suppress(jobs.JobError):
                    self.state.store.cancel(entry.job.id, now=datetime.now(UTC), by=jobs.CancelledBy.ENGINE)
                job = entry.job
                self.log.warning(
                    "job stopped", job=job.id, library=job.library, path=job.rel_path, reason=command.reason
                )
                self._stop_encode(entry)
            case dispatch_decisions.Cancel():
                self.state.store.cancel(command.job_id, now=datetime.now(UTC), by=jobs.CancelledBy.ENGINE)
            case dispatch_decisions.Start() if command.job_id in waiting:
                self._claim(command)
            case _:
                self.log.error("dispatcher command not carried out", command=repr(command))

    def _claim(self, start: dispatch_decisions.Start) -> None:
        """Claim the next runnable job of the libraries available here (the gate admitted one) and start it."""
        config = self.state.config
        claim = self.state.store.claim(
            self.host,
            libraries=self._available,
            lease=config.store.lease,
            library_order=[library.name for library in config.libraries],
            order=queue_order(config),
        )
        if claim is None:  # another host took it meanwhile
            return
        job = claim.job
        estimated = start.estimated_output
        if job.id != start.job_id:  # another host took the one the gate saw; this one came next
            estimated = gate.estimate_output_size(_source_size(config, job))
        self.log.info("job claimed", job=job.id, library=job.library, path=job.rel_path, host=self.host,
                      fence=claim.token, lease_expires_at=claim.expires_at)  # fmt: skip
        entry = Running(job, estimated_output=estimated, token=claim.token)
        self.running[job.id] = entry
        entry.task = asyncio.create_task(self._run(entry), name=f"job-{job.id}")

    def heartbeat(self) -> None:
        """Renew the lease of every running job whose heartbeat is due (`dispatch_decisions.heartbeat_due`)."""
        clock = time.monotonic()
        for entry in list(self.running.values()):
            if dispatch_decisions.heartbeat_due(now=clock, last_heartbeat=entry.last_heartbeat, lease=self.lease):
                self.renew(entry)

    def renew(self, entry: Running) -> None:
        """Renew entry's lease with its progress and the bytes it has yet to write; act on the answer."""
        if entry.token is None or entry.lost:
            return
        ((estimated, written),) = archive_checks.written_so_far([entry])
        try:
            answer = self.state.store.heartbeat(
                entry.job.id,
                entry.token,
                progress=None if entry.ended else entry.progress,
                lease=self.state.config.store.lease,
                remaining=max(0, estimated - written),
            )
        except StoreError as error:  # tried again at the next tick; the lease lasts two more
            self.log.warning("heartbeat not recorded; trying again", job=entry.job.id, error=str(error))
            return
        entry.last_heartbeat = time.monotonic()
        lost = dispatch_decisions.after_heartbeat(job_id=entry.job.id, held=answer.held, cancelled=answer.cancelled)
        if lost is not None:
            self._lose(entry, lost)

    def _lose(self, entry: Running, lost: dispatch_decisions.Lost) -> None:
        """Stop an encode whose job is no longer this host's: as an operator's cancel if it was
        cancelled elsewhere, else killed at once; `_encode` then throws its output away."""
        if entry.lost or entry.cancelled:
            return
        job = entry.job
        if lost.cancelled:
            entry.cancelled = True
            self.log.warning("job cancelled elsewhere", job=job.id, library=job.library, path=job.rel_path)
            self._stop_encode(entry)
            return
        entry.lost = True
        self.log.error("job lost", job=job.id, library=job.library, path=job.rel_path, host=self.host,
                       fence=entry.token, reason=lost.reason)  # fmt: skip
        self._stop_encode(entry, grace=0.0)

    def _expire_leases(self) -> None:
        """Give back to the queue the jobs whose hosts stopped renewing their leases (any host may)."""
        try:
            expired = self.state.store.expire_leases(host_loss_cap=self.state.config.store.host_losses)
        except StoreError as error:
            self.log.warning("expired leases not taken back; trying again", error=str(error))
            return
        for job in expired:
            event = "job dead" if job.state == jobs.JobState.DEAD else "job lease expired"
            self.log.warning(event, job=job.id, library=job.library, path=job.rel_path, reason=job.error)
            self._notify_host_lost(job)

    def _fold_tallies(self) -> None:
        """Move the counts' pending changes into the tallies (PostgreSQL; `agent.store.tallies`)."""
        try:
            self.state.store.fold_tallies()
        except StoreError as error:  # the reads add the pending changes meanwhile: nothing is wrong
            self.log.warning("tally changes not folded; trying again", error=str(error))

    def _recheck_here(self) -> None:
        """Claim only from the libraries whose folder this host can read now, and at all only once
        HandBrakeCLI has changed since it could not start."""
        config = self.state.config
        for name in list(self.unreadable_here):
            library = _library(config, name)
            if library is None or self._seen_here(library) is True:
                del self.unreadable_here[name]
                self.log.info("library readable again on this host", library=name)
        for library in config.libraries:
            if library.name not in self.unreadable_here and self._seen_here(library) is False:
                reason = (
                    f"its folder {library.source} is missing, unreadable or empty on this host while the "
                    "last scan found files in it (a missing mount?)"
                )
                self.unreadable_here[library.name] = reason
                self.log.warning("library unreadable on this host", library=library.name, reason=reason)
        if self.encoder_problem is not None:
            now_seen = _binary(config.handbrake.binary)
            if now_seen is not None and now_seen != self._encoder_seen:
                self.encoder_problem = None
                self.log.info("HandBrakeCLI may start again on this host", binary=now_seen[0])

    def _seen_here(self, library: Library) -> bool | None:
        """Whether this host sees library's files now (see dispatch_decisions.library_seen_here)."""
        listable = _readable(library.source)
        empty = listable and _empty(library.source)
        known: int | None = None
        if empty:  # only then does the last scan's count matter
            try:
                known = self.state.store.load_file_counts().get(library.name, 0)
            except StoreError:
                known = None
        return dispatch_decisions.library_seen_here(listable=listable, empty=empty, last_file_count=known)

    def _release(self, entry: Running, release: dispatch_decisions.Release) -> None:
        """Give entry's job back (no attempt spent) and stop claiming what this host cannot do."""
        job = entry.job
        if release.encoder:
            self.encoder_problem = release.reason
            self._encoder_seen = _binary(self.state.config.handbrake.binary)
        else:
            self.unreadable_here[job.library] = release.reason
        if entry.token is None:
            return
        try:
            self.state.store.release_claim(job.id, entry.token, reason=f"host {self.host}: {release.reason}")
        except LeaseLost:
            return
        except StoreError as error:  # the lease runs out and expire_leases gives it back
            self.log.error("job not released", job=job.id, error=str(error))
            return
        self.log.warning("job released", job=job.id, library=job.library, path=job.rel_path, host=self.host,
                         reason=release.reason)  # fmt: skip

    def _forget_settled_stalls(self) -> None:
        """Stop reporting the stalls whose job was cancelled or retried by hand since."""
        for job_id in [job_id for job_id in self.stalls if job_id not in self.running]:
            job = self.state.store.get_job(job_id)
            if job is None or job.state not in (jobs.JobState.QUEUED, jobs.JobState.FAILED):
                del self.stalls[job_id]

    def _stop_encode(self, entry: Running, *, grace: float = CANCEL_GRACE_SECONDS) -> None:
        """Stop entry's encode (its whole process group) in a task of its own; a tick does not wait."""
        if entry.encode is not None:
            task = asyncio.create_task(entry.encode.cancel(grace=grace))
            self._stopping_tasks.add(task)
            task.add_done_callback(self._stopping_tasks.discard)
        elif entry.task is not None:
            entry.task.cancel()

    async def stop(self) -> None:
        """Stop admitting, stop every encode, give this host's jobs back and remove their temp files."""
        self.stopping = True
        self._wake.set()
        entries = list(self.running.values())
        for entry in entries:
            if entry.encode is None and entry.task is not None:
                entry.task.cancel()  # admitted, but HandBrakeCLI not started yet
        await asyncio.gather(
            *(entry.encode.cancel(grace=CANCEL_GRACE_SECONDS) for entry in entries if entry.encode is not None),
            return_exceptions=True,
        )
        tasks = [entry.task for entry in entries if entry.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=CANCEL_GRACE_SECONDS)
        for entry in entries:  # given back at once, no attempt spent: another host may take them now
            if entry.token is None or entry.lost:
                continue
            with contextlib.suppress(jobs.JobError):  # published, failed or lost meanwhile
                job = self.state.store.release_claim(entry.job.id, entry.token, reason=f"host {self.host} stopped")
                self.log.info("job released", job=job.id, library=job.library, path=job.rel_path, host=self.host,
                              reason="agent stopping")  # fmt: skip
        requeued = self.state.store.requeue_running(now=datetime.now(UTC), host=self.host)
        for job in requeued:
            self.log.info("job requeued", job=job.id, library=job.library, path=job.rel_path, reason="agent stopping")
        archive = self.state.config.paths.archive
        if archive.is_dir():
            publish.clean_partials(
                archive, instance=publish.instance_tag(self.state.config.paths.state_dir), host=self.host
            )

    async def _run(self, entry: Running) -> None:
        job = entry.job
        try:
            await self._encode(entry)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug or an I/O error must fail the job, not the agent
            self.log.exception("job crashed", job=job.id, library=job.library, path=job.rel_path)
            if job.id not in self._unrecorded and not entry.lost:  # its own failure was not recorded: that one is kept
                self._fail(job, f"internal error: {error}", (), token=entry.token)
        finally:
            self.running.pop(job.id, None)
            if not entry.stalled:
                self.stalls.pop(job.id, None)
            self._notify_if_drained()
            self.wake()

    async def _encode(self, entry: Running) -> None:
        job, config = entry.job, self.state.config
        library = _library(config, job.library)
        if library is None:
            raise RuntimeError(f"library {job.library!r} is no longer configured")
        preset = config.presets[_preset_name(library, job.preset_hash, self.state.preset_hashes)]
        archive = config.paths.archive
        source = library.source / job.rel_path
        source_stat, refused = self._refuse_start(job, library, source)
        if refused is not None or source_stat is None:  # found before encoding: no encode is wasted on it
            if isinstance(refused, dispatch_decisions.Release):
                self._release(entry, refused)
            elif refused is not None:
                self._fail(job, refused.reason, (), kind=refused.kind, token=entry.token)
            return
        self._note_ignore_list(archive_checks.ignore_list_problem(archive))
        publish.prepare_partial_dir(archive, ignore_list=False)
        temp = publish.partial_path(
            archive,
            job_id=job.id,
            extension=preset.extension,
            instance=publish.instance_tag(config.paths.state_dir),
            host=self.host,
            token=entry.token,
        )
        entry.temp = temp
        facts = self.state.store.facts_for([job.fingerprint]).get(job.fingerprint)
        tracks = track_options(library, None if facts is None else facts.facts)
        argv = encode_argv(binary=config.handbrake.binary, preset=preset, source=source, output=temp, tracks=tracks)
        reporter = _ProgressReporter(self, entry)
        self.log.info("job started", job=job.id, library=job.library, path=job.rel_path, attempt=job.attempts + 1)
        # The source's duration is measured while HandBrakeCLI works, not after it.
        source_duration = asyncio.create_task(asyncio.to_thread(media_duration, source))
        try:
            entry.encode = await Encode.start(argv, nice=config.limits.nice, on_progress=reporter)
        except OSError as error:  # not found, not executable: this host's problem, not the file's
            source_duration.cancel()
            start_failed = dispatch_decisions.conclude(
                dispatch_decisions.Ended(job.id, stopped=False, start_error=str(error))
            )
            if isinstance(start_failed, dispatch_decisions.Release):
                self._release(entry, start_failed)
            return
        result = await entry.encode.wait()
        entry.ended = True
        ended = dispatch_decisions.Ended(
            job.id,
            stopped=self.stopping or entry.cancelled or (result.cancelled and not entry.stalled and not entry.lost),
            stall=entry.stall_reason,
            stderr_tail=result.stderr_tail,
            lost=entry.lost,
            exit_code=result.exit_code,
            progressed=entry.progressed,
        )
        output_size = 0
        if not ended.stopped and ended.stall is None:
            present = await asyncio.to_thread(os.path.lexists, source)
            ended = replace(ended, source_present=present, library_readable=present or self._seen_here(library) is True)
            if present:
                changed = await asyncio.to_thread(archive_checks.source_changed, source, before=source_stat, job=job)
                ended = replace(ended, source_changed=changed)
                if changed is not None:  # rewritten in place, which no folder's mtime shows: list it next pass
                    self.state.dirty_folders.setdefault(job.library, set()).add(job.rel_path.rpartition("/")[0])
            if present and ended.source_changed is None:
                output_size = temp.stat().st_size if temp.exists() else 0
                verification = await self._verify(temp, result, output_size, source_duration)
                if verification.ok and config.verify_for(library).decode:
                    verification = await self._decode_check(entry, temp, nice=config.limits.nice) or verification
                # Cancelled, stopping or lost while it was verified: thrown away.
                ended = replace(
                    ended, verification=verification, stopped=self.stopping or entry.cancelled, lost=entry.lost
                )
        seconds = time.monotonic() - entry.started
        match dispatch_decisions.conclude(ended):
            case dispatch_decisions.Discard():
                publish.discard_partial(temp)
                if entry.lost:
                    self.log.warning("lost job's encode thrown away", job=job.id, temp=str(temp))
            case dispatch_decisions.Release() as released:
                publish.discard_partial(temp)
                self._release(entry, released)
            case dispatch_decisions.Fail(stalled=True) as failed:
                publish.discard_partial(temp)
                self._fail(job, failed.reason, failed.stderr_tail, kind=failed.kind, token=entry.token)
                stall = ended.stall or ""
                self.stalls[job.id] = f"job {job.id} ({job.library}/{job.rel_path}) stalled: {stall}; retried later"
                self._observe(job, outcome="stalled", seconds=seconds, bytes_read=source_stat.st_size, bytes_written=0)
            case dispatch_decisions.Fail() as failed:
                publish.discard_partial(temp)
                outcome = self._fail(job, failed.reason, failed.stderr_tail, kind=failed.kind, token=entry.token)
                self._observe(job, outcome=outcome, seconds=seconds, bytes_read=source_stat.st_size, bytes_written=0)
            case dispatch_decisions.Publish():
                self.log.info("job verified", job=job.id, library=job.library, path=job.rel_path)
                larger = after_encode(
                    source_size=source_stat.st_size, output_size=output_size,
                    settings=library.larger_output or LargerOutput(),
                )  # fmt: skip
                if larger.publish == "encode":
                    published = self._publish(
                        entry, temp, source_stat.st_size, source_stat.st_mtime_ns, output_size=output_size,
                        larger_output=larger.then,
                    )  # fmt: skip
                else:
                    published = await self._publish_instead(entry, temp, source, source_stat, larger)
                    output_size = source_stat.st_size if larger.publish == "source" else 0
                if larger.then and published and self.observer is not None:  # it saved too little
                    self.observer.larger_output(library=job.library, then=larger.then)
                if published:
                    self._observe(
                        job, outcome="done", seconds=seconds, bytes_read=source_stat.st_size, bytes_written=output_size
                    )

    def _refuse_start(
        self, job: jobs.Job, library: Library, source: Path
    ) -> tuple[os.stat_result | None, dispatch_decisions.Fail | dispatch_decisions.Release | None]:
        """Check, before HandBrakeCLI starts, what would waste its encode; return the source's stat
        (None if it is gone) and the failure to record instead of encoding, or None."""
        archive = self.state.config.paths.archive
        try:
            source_stat: os.stat_result | None = source.stat()
        except FileNotFoundError:
            source_stat = None
        except (PermissionError, NotADirectoryError):
            if _readable(library.source):  # the folder is fine: the file's own problem, not a missing mount
                raise
            source_stat = None
        present = source_stat is not None
        in_the_way = elsewhere = None
        if present:
            found = archive_checks.foreign_output(
                archive, job.output_path, made_by_hb2r=self.state.store.made_output(job.output_path)
            )
            in_the_way = None if found is None else archive_checks.conflict_reason(job.id, found)
            if in_the_way is None:
                elsewhere = archive_checks.cross_mount_problem(archive, (archive / job.output_path).parent)
        refused = dispatch_decisions.before_start(
            job_id=job.id,
            source_present=present,
            library_readable=present or self._seen_here(library) is True,
            in_the_way=in_the_way,
            elsewhere=elsewhere,
        )
        if refused is not None and elsewhere is not None:  # a mount appeared since the pass: hold the library
            self.state.unpublishable_libraries[job.library] = elsewhere
        return source_stat, refused

    async def _verify(
        self, temp: Path, result: EncodeResult, output_size: int, source_duration: asyncio.Task[float | None]
    ) -> Verification:
        """Measure the output and the archive; return the verdict on the encode."""
        archive_free = archive_checks.free_space(temp.parent)  # measured before the temp is removed
        durations: tuple[float | None, float | None] = (None, None)
        output_end: float | None = None
        if result.exit_code == 0 and output_size > 0:
            durations = (await source_duration, await asyncio.to_thread(media_duration, temp))
            if durations[1] is not None:
                measured_end = await asyncio.to_thread(media_end, temp, duration=durations[1])
                output_end = 0.0 if measured_end is None else measured_end  # unreadable: nothing is there
        return verify(
            exit_code=result.exit_code,
            work_done_error=result.work_done_error,
            output_size=output_size,
            source_duration=durations[0],
            output_duration=durations[1],
            output_end=output_end,
            muxed_bytes=muxed_bytes(result.stderr_tail),
            archive_free=archive_free,
            stderr_tail=result.stderr_tail,
        )

    async def _decode_check(self, entry: Running, temp: Path, *, nice: int) -> Verification | None:
        """Decode the whole output at the encoders' niceness; return the failure if it does not decode cleanly.

        A film takes minutes to decode: a cancel, a lost lease or the agent stopping meanwhile stops the
        decode at once (its process group is killed) and returns None; the caller throws the output away.
        """
        decode = asyncio.create_task(decode_whole(temp, nice=nice))
        try:
            while not decode.done():
                if self.stopping or entry.cancelled or entry.lost:
                    return None
                await asyncio.wait({decode}, timeout=DECODE_POLL_SECONDS)
            decoded = decode.result()
        except OSError as error:  # ffmpeg missing: the check that was asked for cannot be made
            return Verification(False, f"the decode check cannot run: {error}")
        finally:
            if not decode.done():
                decode.cancel()
                await asyncio.wait({decode})
        return decode_verdict(exit_code=decoded.exit_code, errors=decoded.errors)

    def _note_ignore_list(self, problem: str | None) -> None:
        """Keep the IgnoreList's state in the archive problems; log it only when it changes."""
        problems = self.state.archive_problems
        if problem == problems.get(archive_checks.IGNORE_LIST_CHECK):
            return
        if problem is None:
            problems.pop(archive_checks.IGNORE_LIST_CHECK, None)
            self.log.info("archive problem: cleared", key=archive_checks.IGNORE_LIST_CHECK)
        else:
            problems[archive_checks.IGNORE_LIST_CHECK] = problem
            self.log.error("archive problem", key=archive_checks.IGNORE_LIST_CHECK, reason=problem)

    def _observe(self, job: jobs.Job, *, outcome: str, seconds: float, bytes_read: int, bytes_written: int) -> None:
        if self.observer is not None:
            self.observer.job_finished(
                library=job.library,
                outcome=outcome,
                seconds=seconds,
                bytes_read=bytes_read,
                bytes_written=bytes_written,
            )

    async def _publish_instead(
        self, running: Running, temp: Path, source: Path, source_stat: os.stat_result, larger: AfterEncode
    ) -> bool:
        """The verified output saved too little (`larger_output`): throw it away and publish the source
        itself (`copy`, under its own extension) or nothing (`skip`), recorded in the ledger either way
        so that the file is not encoded again; return whether it was recorded."""
        job = running.job
        publish.discard_partial(temp)
        self.log.info("output saved too little", job=job.id, library=job.library, path=job.rel_path,
                      reason=larger.reason)  # fmt: skip
        size, mtime_ns = source_stat.st_size, source_stat.st_mtime_ns
        if larger.publish == "nothing":
            return self._publish(running, None, size, mtime_ns, output_size=None, marked=SKIP_MARK,
                                 larger_output=larger.then)  # fmt: skip
        staged = temp.with_name(f"{temp.stem}-source{temp.suffix}")
        try:
            how = await asyncio.to_thread(stage_copy, source, staged)
        except OSError as error:
            self._fail(job, f"cannot copy the source instead ({larger.reason}): {error}", (), token=running.token)
            return False
        return self._publish(running, staged, size, mtime_ns, output_size=size, marked=COPY_MARK,
                             linked=how == "link", larger_output=larger.then)  # fmt: skip

    def _publish(
        self,
        running: Running,
        temp: Path | None,
        size: int,
        mtime_ns: int,
        *,
        output_size: int | None,
        marked: str = "",
        linked: bool = False,
        larger_output: str = "",
    ) -> bool:
        """Record and publish the verified output while this host's token holds the job; return whether
        it was published. A stale token publishes nothing: the temp file is removed. With `marked`
        (agent.batch_plan's COPY_MARK: temp holds the source itself, under its own extension; SKIP_MARK:
        nothing to publish, temp is None) the ledger row says so, as it does the `larger_output.then`
        that applied (agent.store.decisions)."""
        store, archive, job = self.state.store, self.state.config.paths.archive, running.job
        output_path = copy_output_path(job.output_path, job.rel_path) if marked == COPY_MARK else job.output_path
        may_replace = store.made_output(output_path)  # hb2r made what is there, not adopted it
        preset_hash = job.preset_hash
        library = _library(self.state.config, job.library)
        if marked and library is not None:  # what the rules decided holds while they stand (agent.batch_plan)
            preset_hash = marked + decided_identity(job.preset_hash, library)
        entry = LedgerEntry(job.library, job.rel_path, job.fingerprint, size, mtime_ns, preset_hash, output_path)
        try:
            if temp is not None:
                publish.sync_to_disk(temp)
            with store.transaction():
                store.forget_output(job.output_path)  # a vanished source's, taken over
                if running.token is None:  # not claimed (never, since every job is): unfenced
                    store.record_output(entry, encoded_at=stamp(datetime.now(UTC)), output_size=output_size)
                    store.mark_done(job.id, now=datetime.now(UTC))
                else:
                    store.finish_claimed(job.id, running.token, entry, encoded_at=stamp(datetime.now(UTC)),
                                         output_size=output_size, now=datetime.now(UTC))  # fmt: skip
                if larger_output:  # the encode saved too little: counted per library (agent.store.decisions)
                    store.note_larger_output(output_path=output_path, then=larger_output)
                store.record_history(history.ended(
                    job, outcome=Outcome.DONE, host=self.host, seconds=time.monotonic() - running.started,
                    input_bytes=size, output_bytes=output_size, larger_output=larger_output, now=datetime.now(UTC),
                ))  # fmt: skip
                if temp is not None:
                    publish.publish(
                        temp,
                        archive / output_path,
                        may_replace=may_replace,
                        access=None if linked else archive_checks.access(self.state.config),
                    )
        except LeaseLost as error:  # another host holds the job now: its output is that host's to make
            if temp is not None:
                publish.discard_partial(temp)
            self.log.error("job lost: not published", job=job.id, library=job.library, path=job.rel_path,
                           host=self.host, fence=running.token, reason=str(error))  # fmt: skip
            return False
        except publish.PublishConflict as error:
            if temp is not None:
                publish.discard_partial(temp)
            self._fail(job, archive_checks.conflict_reason(job.id, str(error)), (), kind=FailureKind.PERMANENT,
                       token=running.token)  # fmt: skip
            return False
        except OSError as error:  # nothing was published (the rename is atomic): no temp may stay behind
            if temp is not None:
                publish.discard_partial(temp)
            if error.errno == errno.EXDEV:
                self.state.unpublishable_libraries[job.library] = str(error)
            kind = FailureKind.TEMPORARY if error.errno in (errno.EXDEV, errno.ENOSPC) else FailureKind.COUNTED
            self._fail(job, f"cannot publish: {error}", (), kind=kind, token=running.token)
            return False
        self.log.info("job published", job=job.id, library=job.library, path=job.rel_path, output=output_path,
                      **({"as": marked.rstrip(":")} if marked else {}))  # fmt: skip
        return True

    def _fail(
        self,
        job: jobs.Job,
        reason: str,
        stderr_tail: tuple[str, ...] | list[str],
        *,
        kind: FailureKind = FailureKind.COUNTED,
        token: int | None = None,
    ) -> str:
        """Record the failure (retry later, or dead) as its kind says, only while token holds the job;
        return the job's new state ("lost" if token no longer holds it: nothing recorded).

        If the store cannot record it now, keep it to record at the next ticks and return "running".
        Raise jobs.JobError if the job is no longer running.
        """
        store, now, tail, retry = self.state.store, datetime.now(UTC), list(stderr_tail), self.state.config.retry
        entry = self.running.get(job.id)
        try:
            with store.transaction():  # the failure and its history row, or neither
                if kind is FailureKind.TEMPORARY:
                    failed = store.mark_failed_temporarily(
                        job.id, error=reason, stderr_tail=tail, retry=retry, now=now, token=token
                    )
                elif kind is FailureKind.PERMANENT:
                    failed = store.mark_failed_permanently(job.id, error=reason, stderr_tail=tail, now=now, token=token)
                else:
                    failed = store.mark_failed(
                        job.id, error=reason, stderr_tail=tail, retry=retry, now=now, token=token
                    )
                store.record_history(history.ended(
                    job, outcome=history.failure_outcome(failed.state), host=self.host, error=reason, now=now,
                    seconds=None if entry is None else time.monotonic() - entry.started,
                ))  # fmt: skip
        except LeaseLost as error:  # another host holds it now: its failure is not this host's to record
            self.log.error("job lost: failure not recorded", job=job.id, host=self.host, fence=token,
                           reason=reason, error=str(error))  # fmt: skip
            return "lost"
        except StoreError as error:
            self._unrecorded[job.id] = _Failure(job, reason, tuple(stderr_tail), kind, token)
            self.log.error(
                "job failure not recorded; trying again",
                job=job.id,
                library=job.library,
                path=job.rel_path,
                reason=reason,
                error=str(error),
            )
            return str(jobs.JobState.RUNNING)
        event = "job dead" if failed.state == jobs.JobState.DEAD else "job failed"
        self.log.warning(
            event,
            job=job.id,
            library=job.library,
            path=job.rel_path,
            reason=reason,
            attempts=failed.attempts,
            retry_at=failed.not_before,
            kind=str(kind),
        )
        if failed.state == jobs.JobState.DEAD:
            self.state.notify(notify_events.job_dead(
                job_id=job.id, library=job.library, path=job.rel_path, reason=reason, host=self.host
            ))  # fmt: skip
        return str(failed.state)

    def _note_archive_space(self, sample: gate.Sample) -> None:
        """Tell the operator when the archive's free space drops below min_free_disk (once per drop)."""
        minimum = self.state.config.limits.min_free_disk
        # A missing archive also measures 0 B free: its libraries are paused, and that is told instead.
        low = sample.archive_free < minimum and self.state.config.paths.archive.is_dir()
        if low and not self._archive_low:
            self.state.notify(notify_events.archive_low_space(
                free=human_size(sample.archive_free), minimum=human_size(minimum),  # the gate's wording
                archive=str(self.state.config.paths.archive), host=self.host,
            ))  # fmt: skip
        self._archive_low = low

    def _notify_host_lost(self, job: jobs.Job) -> None:
        """Tell the operator which host stopped renewing job's lease (and that the job died, if it did)."""
        try:
            lease = self.state.store.lease_of(job.id)
        except StoreError:
            lease = None
        lost_hosts = (lease.lost_hosts or "") if lease is not None else ""
        host = lost_hosts.rpartition(", ")[2] or "?"
        dead = job.state == jobs.JobState.DEAD
        self.state.notify(notify_events.host_lost(
            host=host, job_id=job.id, library=job.library, path=job.rel_path, dead=dead
        ))  # fmt: skip
        if dead:
            self.state.notify(notify_events.job_dead(
                job_id=job.id, library=job.library, path=job.rel_path, reason=job.error or "lost", host=self.host
            ))  # fmt: skip

    def _notify_if_drained(self) -> None:
        """After an encode here ended: if nothing runs, waits or is to be retried any more, tell the
        operator the queue is empty, with what today's encodes (since local midnight) saved."""
        if self.stopping or self.running:
            return
        try:
            counts = self.state.store.counts()
            if any(counts.get(state, 0) for state in UNFINISHED):
                return
            midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
            today = self.state.store.saved_since(midnight)
        except StoreError as error:
            self.log.warning("queue state not read; no drained notification", error=str(error))
            return
        self.state.notify(notify_events.queue_drained(
            encoded_today=today.files, saved_today=human_size(max(0, today.saved_bytes)),
            dead=counts.get(jobs.JobState.DEAD, 0), host=self.host,
        ))  # fmt: skip

    def _set_blocked(self, reasons: tuple[str, ...]) -> None:
        if reasons == self._blocked:
            return
        if reasons:
            self.log.warning("jobs held back", reasons=list(reasons))
        elif self._blocked:
            self.log.info("jobs may start again")
        self._blocked = reasons
        self.state.store.set_gate(reasons=reasons, now=datetime.now(UTC))


class _ProgressReporter:
    """Keeps a job's progress in memory; writes it to SQLite now and then and logs every 10 %."""

    def __init__(self, dispatcher: Dispatcher, entry: Running) -> None:
        self.dispatcher = dispatcher
        self.entry = entry
        self.written_at = time.monotonic()  # the claim has just set the lease
        self.logged_decile = 0

    def __call__(self, progress: Progress) -> None:
        entry = self.entry
        clock = time.monotonic()
        if progress.overall_percent != entry.progress:
            entry.last_progress = clock
        entry.progressed = True
        entry.progress = progress.overall_percent
        entry.fps = progress.fps
        entry.eta_seconds = progress.eta_seconds
        if clock - self.written_at >= PROGRESS_WRITE_SECONDS:  # one write: progress, and the lease renewed
            self.written_at = clock
            if entry.token is None:
                store = self.dispatcher.state.store
                store.record_progress(entry.job.id, progress=entry.progress, now=datetime.now(UTC))
            else:
                self.dispatcher.renew(entry)
        decile = int(entry.progress // 10)
        if decile > self.logged_decile:
            self.logged_decile = decile
            self.dispatcher.log.info(
                "job progress",
                job=entry.job.id,
                library=entry.job.library,
                path=entry.job.rel_path,
                percent=round(entry.progress, 1),
                fps=progress.fps,
                eta_seconds=progress.eta_seconds,
            )


def _preset_name(library: Library, preset_hash: str, preset_hashes: Mapping[str, str]) -> str:
    """Return the preset a job encodes with: the one a library's rule or `hdr:` named whose
    identity the job holds (agent.rules chose it for the file), else the library's."""
    named = [rule.preset for rule in library.rules or () if rule.preset is not None]
    if library.hdr not in (None, "copy", "skip"):
        named.append(library.hdr)
    chosen = (name for name in named if library_identity(library, preset_hashes, name) == preset_hash)
    return next(chosen, library.preset)


def _library(config: Config, name: str) -> Library | None:
    return next((library for library in config.libraries if library.name == name), None)


def _source_size(config: Config, job: jobs.Job) -> int:
    library = _library(config, job.library)
    if library is None:
        return 0
    try:
        return (library.source / job.rel_path).stat().st_size
    except OSError:
        return 0


def _binary(binary: str) -> tuple[str, int, int, int] | None:
    """Return HandBrakeCLI's path, mtime, mode and inode if it is found and executable, else None."""
    found = shutil.which(binary)
    if found is None:
        return None
    try:
        status = os.stat(found)
    except OSError:
        return None
    return found, status.st_mtime_ns, status.st_mode, status.st_ino


def _readable(folder: Path) -> bool:
    """Whether a library's folder can still be listed (a missing mount cannot)."""
    return folder.is_dir() and os.access(folder, os.R_OK | os.X_OK)


def _empty(folder: Path) -> bool:
    """Whether a listable folder holds nothing (an unmounted share's mount point)."""
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _minute_of_day() -> int:
    local = datetime.now().astimezone()  # windows are in the host's local time
    return local.hour * 60 + local.minute


def queue_order(config: Config) -> QueueOrder:
    """Return the queue's order the config asks for (`order`, each library's, `order_across`)."""
    return QueueOrder(
        default=config.order,
        within={library.name: config.order_for(library) for library in config.libraries},
        across=config.order_across,
    )
