"""The dispatcher: starts queued jobs when the gate admits one, and carries each to its end.

A job's life here: mark running -> HandBrakeCLI writes `<archive>/.hb2r-partial/<id>.<ext>`
-> verify (exit code, WorkDone, size, duration) -> in ONE transaction: ledger row, job done,
and the atomic move into place. If the process dies between the move and the commit, the
next pass finds an output with no ledger row and adopts it; if it dies before the move,
the job is requeued at start and its temp file removed. Either way exactly one output.

The gate is asked at most once a tick (TICK_SECONDS) and admits at most one job a tick, so
the CPU a new encode adds is measured before the next is started. Progress is kept in
memory and written to SQLite at most every PROGRESS_WRITE_SECONDS per job.

Every tick also keeps the running encodes honest:
- an encode whose library a reload took out of the config is stopped, its temp file removed
  and its job cancelled (by the engine: it comes back if the library does);
- a stall watchdog: an encode whose progress has not moved for `handbrake.stall_timeout`
  (time suspended under memory pressure not counted) is hung; its process group is killed
  and the job failed as temporary (retried after the first backoff, the attempt not
  counted). The stall is logged, counted in the metrics (outcome "stalled") and shown by
  /health until the job next ends otherwise;
- a failure that could not be recorded (SQLite busy or failing) is recorded again each tick
  until it is: the job never stays `running` while the agent lives, and its slot is free.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent import archive_checks, descriptors, gate, publish
from agent.config.models import Config, Library
from agent.domain import LedgerEntry
from agent.engine import EngineState
from agent.handbrake.command import encode_argv
from agent.handbrake.mux import muxed_bytes
from agent.handbrake.probe import media_duration, media_end
from agent.handbrake.progress import Progress
from agent.handbrake.runner import Encode
from agent.resources import cpu_count
from agent.store import failures, jobs, ledger, status
from agent.store.db import transaction
from agent.verify import FailureKind, source_gone, verify

TICK_SECONDS = 2.0
PROGRESS_WRITE_SECONDS = 5.0
CANCEL_GRACE_SECONDS = 5.0


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


@dataclass(frozen=True)
class _Failure:
    """A failure to record again: recording it raised (SQLite busy or failing)."""

    job: jobs.Job
    reason: str
    stderr_tail: tuple[str, ...]
    kind: FailureKind


class JobObserver(Protocol):
    """Told how each encode ended (for metrics)."""

    def job_finished(self, *, library: str, outcome: str, seconds: float, bytes_read: int, bytes_written: int) -> None:
        ...


class Dispatcher:
    def __init__(
        self, state: EngineState, *, log: Any, sampler: SampleSource, observer: JobObserver | None = None
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
        job = jobs.cancel(self.state.connection, job_id, now=datetime.now(UTC), by=jobs.CancelledBy.OPERATOR)
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
        """Tick until stopped; a failing tick is logged, never fatal."""
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
        """Relieve memory pressure, then start at most one job if the gate admits it."""
        if self.stopping:
            return
        config = self.state.config
        self._record_unrecorded()
        sample = self.take_sample()
        self._relieve_pressure(sample, config)
        # A hold on a library taken out of the config must not keep its jobs from being cancelled below.
        configured = {library.name for library in config.libraries}
        self._stop_unconfigured(configured)
        self._watch_stalls(config.handbrake.stall_timeout.total_seconds())
        held = set(self.state.held_libraries) & configured
        excluded = set(self.state.paused_libraries) | set(self.state.broken_libraries) | held
        excluded |= set(self.state.unpublishable_libraries)
        job = jobs.next_runnable(
            self.state.connection,
            now=datetime.now(UTC),
            library_order=[library.name for library in config.libraries],
            exclude_libraries=excluded,
        )
        if job is None:
            self.short_of_resources = False
            self._set_blocked(())
            return
        library = _library(config, job.library)
        if library is None:  # its library was taken out of the config; the next pass agrees
            jobs.cancel(self.state.connection, job.id, now=datetime.now(UTC), by=jobs.CancelledBy.ENGINE)
            return
        source = library.source / job.rel_path
        try:
            source_size = source.stat().st_size
        except OSError:
            source_size = 0
        verdict = gate.decide(
            sample=sample,
            limits=config.limits,
            running=len(self.running),  # a suspended encode still holds its memory
            cpu_count=self._cores,
            minute_of_day=_minute_of_day(),
            estimated_output=gate.estimate_output_size(source_size),
            blocked_before=self._strained,
            reserved=gate.reserved_space(archive_checks.written_so_far(self.running.values())),
        )
        self._strained = verdict.strained
        self.short_of_resources = verdict.short_of_resources
        if not verdict.admit:
            self._set_blocked(verdict.reasons)
            return
        self._set_blocked(())
        job = jobs.mark_running(self.state.connection, job.id, now=datetime.now(UTC))
        entry = Running(job, estimated_output=gate.estimate_output_size(source_size))
        self.running[job.id] = entry
        entry.task = asyncio.create_task(self._run(entry), name=f"job-{job.id}")

    def _stop_unconfigured(self, configured: set[str]) -> None:
        """Stop the encodes whose library is no longer configured; cancel their jobs."""
        for entry in list(self.running.values()):
            if entry.job.library in configured or entry.cancelled:
                continue
            entry.cancelled = True  # _encode throws away whatever it made
            with contextlib.suppress(jobs.JobError):
                jobs.cancel(self.state.connection, entry.job.id, now=datetime.now(UTC), by=jobs.CancelledBy.ENGINE)
            self.log.warning(
                "job stopped",
                job=entry.job.id,
                library=entry.job.library,
                path=entry.job.rel_path,
                reason="its library was taken out of the config",
            )
            self._stop_encode(entry)

    def _watch_stalls(self, timeout: float) -> None:
        """Kill the encodes whose progress has not moved for timeout seconds (suspended ones wait)."""
        for job_id in [job_id for job_id in self.stalls if job_id not in self.running]:
            job = jobs.get(self.state.connection, job_id)
            if job is None or job.state not in (jobs.JobState.QUEUED, jobs.JobState.FAILED):
                del self.stalls[job_id]  # cancelled or retried by hand since: no longer a stalled job
        clock = time.monotonic()
        for entry in list(self.running.values()):
            if entry.encode is None or entry.stalled or entry.cancelled:
                continue
            if entry.suspended:
                entry.last_progress = clock  # suspended is waiting, not stuck
                continue
            if clock - entry.last_progress < timeout:
                continue
            entry.stalled = True
            job = entry.job
            self.log.warning(
                "job stalled",
                job=job.id,
                library=job.library,
                path=job.rel_path,
                seconds_without_progress=round(clock - entry.last_progress),
                percent=round(entry.progress, 1),
            )
            self._stop_encode(entry)

    def _stop_encode(self, entry: Running) -> None:
        """Stop entry's encode (its whole process group) in a task of its own; a tick does not wait."""
        if entry.encode is not None:
            task = asyncio.create_task(entry.encode.cancel(grace=CANCEL_GRACE_SECONDS))
            self._stopping_tasks.add(task)
            task.add_done_callback(self._stopping_tasks.discard)
        elif entry.task is not None:
            entry.task.cancel()

    def _record_unrecorded(self) -> None:
        """Record again the failures that could not be recorded; keep those that still cannot."""
        for job_id, failure in list(self._unrecorded.items()):
            del self._unrecorded[job_id]  # _fail keeps it again if it still cannot be recorded
            with contextlib.suppress(jobs.JobError):  # no longer running (cancelled, requeued): nothing to record
                self._fail(failure.job, failure.reason, failure.stderr_tail, kind=failure.kind)

    async def stop(self) -> None:
        """Stop admitting, stop every encode, requeue their jobs and remove their temp files."""
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
        requeued = jobs.requeue_running(self.state.connection, now=datetime.now(UTC))
        for job in requeued:
            self.log.info("job requeued", job=job.id, library=job.library, path=job.rel_path, reason="agent stopping")
        archive = self.state.config.paths.archive
        if archive.is_dir():
            publish.clean_partials(archive, instance=publish.instance_tag(self.state.config.paths.state_dir))

    async def _run(self, entry: Running) -> None:
        job = entry.job
        try:
            await self._encode(entry)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug or an I/O error must fail the job, not the agent
            self.log.exception("job crashed", job=job.id, library=job.library, path=job.rel_path)
            if job.id not in self._unrecorded:  # its own failure was not recorded: that one is kept
                self._fail(job, f"internal error: {error}", ())
        finally:
            self.running.pop(job.id, None)
            if not entry.stalled:
                self.stalls.pop(job.id, None)
            self.wake()

    async def _encode(self, entry: Running) -> None:
        job, config = entry.job, self.state.config
        library = _library(config, job.library)
        if library is None:
            raise RuntimeError(f"library {job.library!r} is no longer configured")
        preset = config.presets[library.preset]
        archive = config.paths.archive
        source = library.source / job.rel_path
        try:
            source_stat = source.stat()
        except FileNotFoundError:
            self._source_gone(job, library, when="start", stderr_tail=())
            return
        in_the_way = archive_checks.foreign_output(
            archive, job.output_path, made_by_hb2r=ledger.made_output(self.state.connection, job.output_path)
        )
        if in_the_way is not None:  # found before encoding: no encode is wasted on it
            self._fail(job, archive_checks.conflict_reason(job.id, in_the_way), (), kind=FailureKind.PERMANENT)
            return
        elsewhere = archive_checks.cross_mount_problem(archive, (archive / job.output_path).parent)
        if elsewhere is not None:  # a mount appeared since the pass: hold the library, spend no encode
            self.state.unpublishable_libraries[job.library] = elsewhere
            self._fail(job, elsewhere, (), kind=FailureKind.TEMPORARY)
            return
        self._note_ignore_list(archive_checks.ignore_list_problem(archive))
        publish.prepare_partial_dir(archive, ignore_list=False)
        temp = publish.partial_path(
            archive, job_id=job.id, extension=preset.extension, instance=publish.instance_tag(config.paths.state_dir)
        )
        entry.temp = temp
        argv = encode_argv(binary=config.handbrake.binary, preset=preset, source=source, output=temp)
        reporter = _ProgressReporter(self, entry)
        self.log.info("job started", job=job.id, library=job.library, path=job.rel_path, attempt=job.attempts + 1)
        # The source's duration is measured while HandBrakeCLI works, not after it.
        source_duration = asyncio.create_task(asyncio.to_thread(media_duration, source))
        entry.encode = await Encode.start(argv, nice=config.limits.nice, on_progress=reporter)
        result = await entry.encode.wait()
        if entry.stalled and not (self.stopping or entry.cancelled):
            publish.discard_partial(temp)
            self._stalled(entry, stderr_tail=result.stderr_tail, bytes_read=source_stat.st_size)
            return
        if result.cancelled or self.stopping or entry.cancelled:
            publish.discard_partial(temp)
            return
        if not await asyncio.to_thread(os.path.lexists, source):
            publish.discard_partial(temp)
            self._source_gone(job, library, when="end", stderr_tail=result.stderr_tail)
            return
        changed = await asyncio.to_thread(archive_checks.source_changed, source, before=source_stat, job=job)
        if changed is not None:  # what HandBrakeCLI read may mix two contents: never publish it
            publish.discard_partial(temp)
            self._fail(job, changed, result.stderr_tail, kind=FailureKind.TEMPORARY)
            return
        output_size = temp.stat().st_size if temp.exists() else 0
        archive_free = archive_checks.free_space(temp.parent)  # measured before the temp is removed
        durations: tuple[float | None, float | None] = (None, None)
        output_end: float | None = None
        if result.exit_code == 0 and output_size > 0:
            durations = (await source_duration, await asyncio.to_thread(media_duration, temp))
            if durations[1] is not None:
                measured_end = await asyncio.to_thread(media_end, temp, duration=durations[1])
                output_end = 0.0 if measured_end is None else measured_end  # unreadable: nothing is there
        verification = verify(
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
        if entry.cancelled or self.stopping:
            publish.discard_partial(temp)
            return
        seconds = time.monotonic() - entry.started
        if not verification.ok:
            publish.discard_partial(temp)
            outcome = self._fail(job, verification.reason, result.stderr_tail, kind=verification.kind)
            self._observe(job, outcome=outcome, seconds=seconds, bytes_read=source_stat.st_size, bytes_written=0)
            return
        self.log.info("job verified", job=job.id, library=job.library, path=job.rel_path, duration=durations[1])
        if self._publish(job, temp, source_stat.st_size, source_stat.st_mtime_ns, output_size=output_size):
            self._observe(
                job, outcome="done", seconds=seconds, bytes_read=source_stat.st_size, bytes_written=output_size
            )

    def _source_gone(self, job: jobs.Job, library: Library, *, when: str, stderr_tail: tuple[str, ...]) -> None:
        readable = os.access(library.source, os.R_OK | os.X_OK) and library.source.is_dir()
        gone = source_gone(when=when, library_readable=readable)
        self._fail(job, gone.reason, stderr_tail, kind=gone.kind)

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

    def _publish(self, job: jobs.Job, temp: Path, size: int, mtime_ns: int, *, output_size: int) -> bool:
        """Record and publish the verified output; return whether it was published."""
        connection, archive = self.state.connection, self.state.config.paths.archive
        may_replace = ledger.made_output(connection, job.output_path)  # hb2r made what is there, not adopted it
        entry = LedgerEntry(
            job.library, job.rel_path, job.fingerprint, size, mtime_ns, job.preset_hash, job.output_path
        )
        try:
            with transaction(connection):
                ledger.forget_output(connection, job.output_path)  # a vanished source's, taken over
                ledger.record(connection, entry, encoded_at=datetime.now(UTC).isoformat(), output_size=output_size)
                jobs.mark_done(connection, job.id, now=datetime.now(UTC))
                publish.publish(
                    temp,
                    archive / job.output_path,
                    may_replace=may_replace,
                    access=archive_checks.access(self.state.config),
                )
        except publish.PublishConflict as error:
            publish.discard_partial(temp)
            self._fail(job, archive_checks.conflict_reason(job.id, str(error)), (), kind=FailureKind.PERMANENT)
            return False
        except OSError as error:  # nothing was published (the rename is atomic): no temp may stay behind
            publish.discard_partial(temp)
            if error.errno == errno.EXDEV:
                self.state.unpublishable_libraries[job.library] = str(error)
            kind = FailureKind.TEMPORARY if error.errno in (errno.EXDEV, errno.ENOSPC) else FailureKind.COUNTED
            self._fail(job, f"cannot publish: {error}", (), kind=kind)
            return False
        self.log.info("job published", job=job.id, library=job.library, path=job.rel_path, output=job.output_path)
        return True

    def _stalled(self, entry: Running, *, stderr_tail: tuple[str, ...], bytes_read: int) -> None:
        job, timeout = entry.job, self.state.config.handbrake.stall_timeout
        reason = f"no progress for {_duration(timeout.total_seconds())} at {entry.progress:.1f}%: HandBrakeCLI hung"
        self._fail(job, f"{reason}; killed, will be retried", stderr_tail, kind=FailureKind.TEMPORARY)
        self.stalls[job.id] = f"job {job.id} ({job.library}/{job.rel_path}) stalled: {reason}; retried later"
        self._observe(
            job, outcome="stalled", seconds=time.monotonic() - entry.started, bytes_read=bytes_read, bytes_written=0
        )

    def _fail(
        self,
        job: jobs.Job,
        reason: str,
        stderr_tail: tuple[str, ...] | list[str],
        *,
        kind: FailureKind = FailureKind.COUNTED,
    ) -> str:
        """Record the failure (retry later, or dead) as its kind says; return the job's new state.

        If SQLite cannot record it now, keep it to record at the next ticks and return "running".
        Raise jobs.JobError if the job is no longer running.
        """
        connection, now, tail = self.state.connection, datetime.now(UTC), list(stderr_tail)
        try:
            if kind is FailureKind.TEMPORARY:
                failed = failures.mark_failed_temporarily(
                    connection, job.id, error=reason, stderr_tail=tail, retry=self.state.config.retry, now=now
                )
            elif kind is FailureKind.PERMANENT:
                failed = failures.mark_failed_permanently(connection, job.id, error=reason, stderr_tail=tail, now=now)
            else:
                failed = jobs.mark_failed(
                    connection, job.id, error=reason, stderr_tail=tail, retry=self.state.config.retry, now=now
                )
        except sqlite3.Error as error:
            self._unrecorded[job.id] = _Failure(job, reason, tuple(stderr_tail), kind)
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
        return str(failed.state)

    def _relieve_pressure(self, sample: gate.Sample, config: Config) -> None:
        pressure = gate.memory_pressure(sample=sample, limits=config.limits, suspended=self._suspended_count())
        active = [entry for entry in self.running.values() if entry.encode is not None]
        if pressure.suspend:
            candidates = [entry for entry in active if not entry.suspended]
            if candidates:
                newest = max(candidates, key=lambda entry: entry.started)
                assert newest.encode is not None  # noqa: S101 - filtered above
                newest.encode.suspend()
                newest.suspended = True
                self.log.warning("job suspended", job=newest.job.id, reason=pressure.reason)
        elif pressure.resume:
            suspended = [entry for entry in active if entry.suspended]
            if suspended:
                oldest = min(suspended, key=lambda entry: entry.started)
                assert oldest.encode is not None  # noqa: S101 - filtered above
                oldest.encode.resume()
                oldest.suspended = False
                self.log.info("job resumed", job=oldest.job.id, reason=pressure.reason)

    def _suspended_count(self) -> int:
        return sum(1 for entry in self.running.values() if entry.suspended)

    def _set_blocked(self, reasons: tuple[str, ...]) -> None:
        if reasons == self._blocked:
            return
        if reasons:
            self.log.warning("jobs held back", reasons=list(reasons))
        elif self._blocked:
            self.log.info("jobs may start again")
        self._blocked = reasons
        status.set_gate(self.state.connection, reasons=reasons, now=datetime.now(UTC))


class _ProgressReporter:
    """Keeps a job's progress in memory; writes it to SQLite now and then and logs every 10 %."""

    def __init__(self, dispatcher: Dispatcher, entry: Running) -> None:
        self.dispatcher = dispatcher
        self.entry = entry
        self.written_at = 0.0
        self.logged_decile = 0

    def __call__(self, progress: Progress) -> None:
        entry = self.entry
        clock = time.monotonic()
        if progress.overall_percent != entry.progress:
            entry.last_progress = clock
        entry.progress = progress.overall_percent
        entry.fps = progress.fps
        entry.eta_seconds = progress.eta_seconds
        if clock - self.written_at >= PROGRESS_WRITE_SECONDS:
            self.written_at = clock
            jobs.record_progress(
                self.dispatcher.state.connection, entry.job.id, progress=entry.progress, now=datetime.now(UTC)
            )
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


def _library(config: Config, name: str) -> Library | None:
    return next((library for library in config.libraries if library.name == name), None)


def _duration(seconds: float) -> str:
    """Return seconds as an operator writes them in the config: 90s, 10m, 1h30m."""
    whole = int(seconds)
    hours, minutes, rest = whole // 3600, whole % 3600 // 60, whole % 60
    return "".join(f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (rest, "s")) if value) or "0s"


def _minute_of_day() -> int:
    local = datetime.now().astimezone()  # windows are in the host's local time
    return local.hour * 60 + local.minute
