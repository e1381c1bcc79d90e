"""The dispatcher's decisions, pure: given the facts of a tick, return the commands to carry out.

The runner (`agent.dispatcher.Dispatcher`) gathers the facts — the next runnable jobs, the
running encodes as plain values, the host sample, the clock, which libraries are available —
calls `decide()` and carries out what it returns; at the end of an encode it calls
`conclude()`. Nothing here reads a clock, a file, a process or SQLite, so every rule below is
tested by a decision table (tests/unit/test_dispatch.py) with no HandBrakeCLI.

The rules of a tick, in the order they are applied:
1. A failure the runner could not record (SQLite busy or failing) is recorded again
   (`Fail`): the job never stays `running` while the agent lives, and its slot is free.
2. Memory pressure (`gate.memory_pressure`, with hysteresis) suspends the newest running
   encode (`Suspend`); once it has passed, the oldest suspended one resumes (`Resume`). One
   a tick, so the effect is measured before the next. A suspended encode still counts
   against max_jobs: it holds its memory.
3. An encode whose library a reload took out of the config is stopped and its job
   cancelled (`Cancel`; by the engine: it comes back if the library does).
4. The stall watchdog: an encode whose progress has not moved for `handbrake.stall_timeout`
   is hung: `Fail(temporary)` — the runner kills its process group and records the failure
   when it has ended; retried after the first backoff, the attempt not counted. Time
   suspended is not counted: the runner keeps `last_progress` current while suspended.
5. Admission: the first runnable job whose library is available is offered to the gate
   (`gate.decide`); at most one job is started a tick (`Start`), so the CPU a new encode
   adds is measured before the next. A runnable job whose library is no longer configured is
   cancelled instead. A refusal's reasons are kept (`Decision.blocked`) for /health and the
   log, with the gate's hysteresis state.

At the end of an encode (`conclude`): an encode whose lease was lost (another host holds the
job now) or that was stopped (cancelled, agent stopping) is thrown away (`Discard`), nothing
recorded; a HandBrakeCLI that could not start, and a source whose library folder this host
cannot read (a missing mount), are this host's problems, not the file's: the job is given
back (`Release`, no attempt spent) for another host, and this host stops claiming from that
library (or at all, for HandBrakeCLI) until it can again; a hung one fails as temporary; a
source that is gone fails permanently (as
`verify.source_gone` says); a source that changed during the encode fails as temporary; a
failed verification fails as its kind says (`verify.FailureKind`); a whole one is published
(`Publish`: ledger row, job done and the atomic move, in one transaction).

Leases (`agent.store.leases`): every job runs under a claim, on SQLite too (one code path).
`heartbeat_due` says when a running job's lease is renewed (every lease/3); `after_heartbeat`
says what a heartbeat's answer means: still held (carry on), cancelled elsewhere (stop it as
an operator's cancel does), or lost (another host may hold it: kill the encode at once,
remove its temp file, publish and record nothing).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from agent import gate
from agent.config.models import Limits
from agent.verify import FailureKind, Verification, source_gone


@dataclass(frozen=True)
class Encoding:
    """A running encode, as plain values.

    `started` and `last_progress` are monotonic seconds: admission, and the last time its
    progress moved (kept current by the runner while it is suspended). `has_process`: its
    HandBrakeCLI has started. `stopping`: already being stopped (cancelled or stalled).
    """

    job_id: int
    library: str
    started: float
    last_progress: float
    progress: float = 0.0
    suspended: bool = False
    has_process: bool = True
    stopping: bool = False


@dataclass(frozen=True)
class Candidate:
    """A runnable job (queued, or failed with its backoff passed), with its source's size."""

    job_id: int
    library: str
    source_size: int


@dataclass(frozen=True)
class Unrecorded:
    """A failure the runner could not record; recorded again at the next tick."""

    job_id: int
    kind: FailureKind
    reason: str
    stderr_tail: tuple[str, ...] = ()


@dataclass(frozen=True)
class Start:
    job_id: int
    estimated_output: int  # bytes the gate reserved for its output


@dataclass(frozen=True)
class Suspend:
    job_id: int
    reason: str


@dataclass(frozen=True)
class Resume:
    job_id: int
    reason: str


@dataclass(frozen=True)
class Cancel:
    """Cancel the job (by the engine); stop its encode if it runs."""

    job_id: int
    reason: str


@dataclass(frozen=True)
class Fail:
    """Fail the job as `kind` says (permanent: dead at once; temporary: attempt not counted;
    counted: against retry.attempts). `stalled`: the watchdog's; its encode is stopped first."""

    job_id: int
    kind: FailureKind
    reason: str
    stderr_tail: tuple[str, ...] = ()
    stalled: bool = False


@dataclass(frozen=True)
class Publish:
    job_id: int


@dataclass(frozen=True)
class Release:
    """Give the job back to the queue, no attempt spent: the problem is this host's, not the file's.
    `encoder`: HandBrakeCLI cannot start here (claim nothing); else its library cannot be read here."""

    job_id: int
    reason: str
    encoder: bool = False


@dataclass(frozen=True)
class Lost:
    """The job's lease is no longer this host's: stop the encode, remove its temp file, publish and
    record nothing. `cancelled`: it was cancelled elsewhere (stopped as an operator's cancel is);
    else another host may be encoding it (killed at once)."""

    job_id: int
    reason: str
    cancelled: bool = False


@dataclass(frozen=True)
class Discard:
    """Throw the encode's output away and record nothing (the job was cancelled or requeued)."""

    job_id: int


Command = Start | Suspend | Resume | Cancel | Fail | Publish | Discard | Release | Lost


@dataclass(frozen=True)
class Tick:
    """The facts of one tick."""

    now: float  # monotonic seconds
    minute_of_day: int  # the host's local time, for limits.windows
    sample: gate.Sample
    limits: Limits
    cpu_count: int
    stall_timeout: float  # seconds
    configured: frozenset[str]  # libraries in the config
    available: frozenset[str]  # configured, readable, not paused, held or unpublishable
    running: tuple[Encoding, ...] = ()
    candidates: tuple[Candidate, ...] = ()  # runnable jobs, first to start first
    unrecorded: tuple[Unrecorded, ...] = ()
    strained: bool = False  # the last verdict refused for CPU or memory use: hysteresis applies
    reserved: int = 0  # archive bytes the running encodes (of every host) may still write
    encoder_problem: str | None = None  # HandBrakeCLI cannot start on this host: nothing is claimed


@dataclass(frozen=True)
class Decision:
    commands: tuple[Command, ...]
    blocked: tuple[str, ...] = ()  # why no job started although one was waiting
    strained: bool = False
    short_of_resources: bool = False  # the refusal was for CPU, memory or disk space


def unavailable_libraries(
    *,
    configured: Collection[str],
    paused: Iterable[str],
    broken: Iterable[str],
    held: Iterable[str],
    unpublishable: Iterable[str],
    unreadable_here: Iterable[str] = (),
) -> frozenset[str]:
    """Return the libraries no job may start in now (`unreadable_here`: their source cannot be
    read on this host). A hold on a library no longer configured does not count: its jobs must
    still be cancelled."""
    unavailable = frozenset(paused) | frozenset(broken) | frozenset(unpublishable) | frozenset(unreadable_here)
    return unavailable | (frozenset(held) & set(configured))


def decide(tick: Tick) -> Decision:
    """Given the facts of a tick, return the commands to carry out, in order (see the module's rules)."""
    commands: list[Command] = [Fail(item.job_id, item.kind, item.reason, item.stderr_tail) for item in tick.unrecorded]
    relief = _relieve_pressure(tick)
    commands.extend(relief)
    stopped = {command.job_id for command in relief if isinstance(command, Suspend)}  # waiting, not stuck
    for encoding in tick.running:
        if encoding.library not in tick.configured and not encoding.stopping:
            commands.append(Cancel(encoding.job_id, "its library was taken out of the config"))
            stopped.add(encoding.job_id)
    for encoding in tick.running:
        if encoding.job_id not in stopped and _stalled(encoding, now=tick.now, timeout=tick.stall_timeout):
            reason = f"no progress for {duration(tick.stall_timeout)} at {encoding.progress:.1f}%: HandBrakeCLI hung"
            commands.append(Fail(encoding.job_id, FailureKind.TEMPORARY, reason, stalled=True))
    candidate = next(
        (item for item in tick.candidates if item.library in tick.available or item.library not in tick.configured),
        None,
    )
    if candidate is None:
        return Decision(tuple(commands), strained=tick.strained)
    if candidate.library not in tick.configured:  # the next pass agrees
        commands.append(Cancel(candidate.job_id, "its library was taken out of the config"))
        return Decision(tuple(commands), strained=tick.strained)
    if tick.encoder_problem is not None:
        blocked = (f"HandBrakeCLI cannot start on this host: {tick.encoder_problem}",)
        return Decision(tuple(commands), blocked=blocked, strained=tick.strained)
    estimated = gate.estimate_output_size(candidate.source_size)
    verdict = gate.decide(
        sample=tick.sample,
        limits=tick.limits,
        running=len(tick.running),  # a suspended encode still holds its memory
        cpu_count=tick.cpu_count,
        minute_of_day=tick.minute_of_day,
        estimated_output=estimated,
        blocked_before=tick.strained,
        reserved=tick.reserved,
    )
    if verdict.admit:
        commands.append(Start(candidate.job_id, estimated))
        return Decision(tuple(commands), strained=verdict.strained, short_of_resources=verdict.short_of_resources)
    return Decision(
        tuple(commands),
        blocked=verdict.reasons,
        strained=verdict.strained,
        short_of_resources=verdict.short_of_resources,
    )


def _relieve_pressure(tick: Tick) -> list[Command]:
    suspended = [encoding for encoding in tick.running if encoding.suspended]
    pressure = gate.memory_pressure(sample=tick.sample, limits=tick.limits, suspended=len(suspended))
    active = [encoding for encoding in tick.running if encoding.has_process]
    if pressure.suspend:
        candidates = [encoding for encoding in active if not encoding.suspended]
        if candidates:
            return [Suspend(max(candidates, key=lambda encoding: encoding.started).job_id, pressure.reason)]
    elif pressure.resume:
        waiting = [encoding for encoding in active if encoding.suspended]
        if waiting:
            return [Resume(min(waiting, key=lambda encoding: encoding.started).job_id, pressure.reason)]
    return []


def _stalled(encoding: Encoding, *, now: float, timeout: float) -> bool:
    if not encoding.has_process or encoding.stopping or encoding.suspended:
        return False
    return now - encoding.last_progress >= timeout


@dataclass(frozen=True)
class Ended:
    """What the runner knows of an encode that has ended."""

    job_id: int
    stopped: bool  # cancelled (operator, removed library) or the agent is stopping
    stall: str | None = None  # the watchdog's reason, if it killed the encode
    source_present: bool = True
    library_readable: bool = True
    source_changed: str | None = None  # why the source may differ from what was queued
    verification: Verification | None = None  # None when not verified yet
    stderr_tail: tuple[str, ...] = ()
    lost: bool = False  # a heartbeat found the lease no longer this host's
    start_error: str | None = None  # HandBrakeCLI could not be started (exec error)
    exit_code: int | None = None
    progressed: bool = True  # HandBrakeCLI reported some progress


# What an exec wrapper (nice, ionice, setpriv) exits with when it cannot run HandBrakeCLI:
# 126 found but not executable, 127 not found (POSIX shells, coreutils, util-linux).
EXEC_FAILED_EXIT_CODES = frozenset({126, 127})


def conclude(ended: Ended) -> Publish | Fail | Discard | Release:
    """Given how an encode ended, return what becomes of its output and its job."""
    job_id, tail = ended.job_id, ended.stderr_tail
    if ended.lost:
        return Discard(job_id)
    if ended.start_error is not None:
        return Release(job_id, f"HandBrakeCLI cannot start on this host: {ended.start_error}", encoder=True)
    if not ended.progressed and ended.exit_code in EXEC_FAILED_EXIT_CODES and not ended.stopped:
        said = "; ".join(tail[-2:]) or "no message"
        return Release(job_id, f"HandBrakeCLI cannot start on this host: exit {ended.exit_code} ({said})", encoder=True)
    if ended.stall is not None and not ended.stopped:
        return Fail(job_id, FailureKind.TEMPORARY, f"{ended.stall}; killed, will be retried", tail, stalled=True)
    if ended.stopped:
        return Discard(job_id)
    if not ended.source_present:
        if not ended.library_readable:
            return Release(job_id, unreadable_here(when="during its encode"))
        gone = source_gone(when="end", library_readable=True)
        return Fail(job_id, gone.kind, gone.reason, tail)
    if ended.source_changed is not None:  # what HandBrakeCLI read may mix two contents: never publish it
        return Fail(job_id, FailureKind.TEMPORARY, ended.source_changed, tail)
    if ended.verification is None or not ended.verification.ok:
        verification = ended.verification or Verification(False, "the encode was not verified")
        return Fail(job_id, verification.kind, verification.reason, tail)
    return Publish(job_id)


def before_start(
    *, job_id: int, source_present: bool, library_readable: bool, in_the_way: str | None, elsewhere: str | None
) -> Fail | Release | None:
    """Given what the runner found before starting HandBrakeCLI, return the failure that spares the
    encode, or None: a source already gone, a file hb2r did not make at the output path (permanent),
    an output folder on another mount (temporary: a mount appeared since the pass). A source
    whose library folder this host cannot read is released for another host."""
    if not source_present:
        if not library_readable:
            return Release(job_id, unreadable_here(when="when its encode started"))
        gone = source_gone(when="start", library_readable=True)
        return Fail(job_id, gone.kind, gone.reason)
    if in_the_way is not None:
        return Fail(job_id, FailureKind.PERMANENT, in_the_way)
    if elsewhere is not None:
        return Fail(job_id, FailureKind.TEMPORARY, elsewhere)
    return None


def unreadable_here(*, when: str) -> str:
    """Return why a job whose library folder this host cannot read was given back."""
    return (
        f"the source cannot be read on this host {when}: its library's folder is missing or unreadable "
        "(a missing mount?); released for another host, no attempt spent"
    )


def library_seen_here(*, listable: bool, empty: bool, last_file_count: int | None) -> bool | None:
    """Whether this host sees a library's files, given what it finds at the library's folder and the
    file count of the store's last good scan (None: the store cannot say now).

    An unmounted share leaves its mount point behind, listable and empty: empty while the last scan
    counted files is a missing mount, not a library whose every file was deleted. None: not known.
    """
    if not listable:
        return False
    if not empty:
        return True
    if last_file_count is None:
        return None
    return last_file_count == 0


def heartbeat_due(*, now: float, last_heartbeat: float, lease: float) -> bool:
    """Given the monotonic time, the last heartbeat's and the lease (seconds), return whether to renew now:
    every third of the lease, so that two heartbeats may fail before it runs out."""
    return now - last_heartbeat >= lease / 3


def after_heartbeat(*, job_id: int, held: bool, cancelled: bool) -> Lost | None:
    """Given a heartbeat's answer for a running job, return what to do: None while this host still
    holds it; else `Lost`, cancelled or not."""
    if held:
        return None
    if cancelled:
        return Lost(job_id, "the job was cancelled elsewhere", cancelled=True)
    return Lost(job_id, "its lease is no longer this host's (expired and taken, released or gone)")


def duration(seconds: float) -> str:
    """Return seconds as an operator writes them in the config: 90s, 10m, 1h30m."""
    whole = int(seconds)
    hours, minutes, rest = whole // 3600, whole % 3600 // 60, whole % 60
    return "".join(f"{value}{unit}" for value, unit in ((hours, "h"), (minutes, "m"), (rest, "s")) if value) or "0s"
