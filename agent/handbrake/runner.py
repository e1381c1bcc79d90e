"""Run one HandBrakeCLI encode: start it low-priority, follow its progress, pause, stop it.

The one module that starts encoder processes, so the rules about them live in one place:

- No orphans. Each encode runs in a session and process group of its own
  (`start_new_session`), and every stop signals the whole group, not one pid: a cancel,
  a cancelled `wait()`, the end of the loop. If the agent itself dies (even by SIGKILL),
  the kernel kills the encode too (`setpriv --pdeathsig KILL`; strictly, when the thread
  that started it ends, which is the event loop's), so a restarted agent never races an old
  HandBrakeCLI still writing its temp file, and a suspended one never lingers stopped.
- Low priority from the first instruction. Linux keeps niceness and I/O priority per
  thread, and HandBrakeCLI starts dozens of worker threads within milliseconds; renicing
  its pid afterwards (psutil) races those threads, and a `preexec_fn` is unsafe in a
  process that has threads, as the agent does. So the child exec's through coreutils
  `nice` and util-linux `ionice` (best-effort level 7, then idle where allowed; `-t`
  keeps going where the kernel refuses) before it becomes HandBrakeCLI, keeping its pid.
  Without those tools the pid is reniced after the start, as the next best thing. Last,
  coreutils `stdbuf -oL` makes its progress output line-buffered, so it arrives as made.
- The pipes are always drained. stdout is read in chunks and fed to the pure
  ProgressParser; stderr keeps only its last lines (the reason a job failed). A callback
  that raises is logged and ignored: a reader that stopped would let the pipe fill and
  HandBrakeCLI would block forever.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import functools
import os
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from agent.handbrake.progress import Progress, ProgressParser, WorkDone
from agent.logs import get_logger

STDERR_TAIL_LINES = 50
_CHUNK_BYTES = 64 * 1024
_MAX_STDERR_LINE_CHARS = 4096
# After HandBrakeCLI exits, how long its pipes may stay open before the rest of its
# process group is killed, and how long to wait for them once it is.
_DRAIN_SECONDS = 1.0

log = get_logger(__name__)


@dataclass(frozen=True)
class EncodeResult:
    """How an encode ended. `exit_code` is negative when a signal ended it (-9: killed);
    `work_done_error` is HandBrake's own verdict (0 = done), None when it never said;
    `cancelled` is True when `cancel()` stopped it before it ended by itself."""

    exit_code: int
    work_done_error: int | None
    stderr_tail: tuple[str, ...]
    cancelled: bool


class Encode:
    """One running HandBrakeCLI process. Make it with `await Encode.start(...)`."""

    def __init__(self, process: asyncio.subprocess.Process, on_progress: Callable[[Progress], None]) -> None:
        """Given a process just started in its own session, follow it; use `start()` instead."""
        self._process = process
        self._on_progress = on_progress
        self._parser = ProgressParser()
        self._stderr_tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._work_done_error: int | None = None
        self._cancelled = False
        self._suspended = False
        self._outcome = asyncio.create_task(self._follow(), name=f"handbrake-{process.pid}")

    @classmethod
    async def start(cls, argv: Sequence[str], *, nice: int, on_progress: Callable[[Progress], None]) -> Encode:
        """Given a HandBrakeCLI argv, a niceness (0-19) and a progress callback, start the
        encode at that niceness and idle I/O priority and return it; raise FileNotFoundError
        if argv[0] is not an executable, ValueError for an empty argv or a niceness out of range."""
        if not argv:
            raise ValueError("argv is empty")
        if not 0 <= nice <= 19:
            raise ValueError(f"nice must be 0-19, got {nice}")
        if shutil.which(argv[0]) is None:
            raise FileNotFoundError(errno.ENOENT, "no such executable", argv[0])
        process = await start_low_priority(argv, nice=nice, stdout=asyncio.subprocess.PIPE)
        return cls(process, on_progress)

    @property
    def pid(self) -> int:
        """Return the encoder's pid, which is also its process group id."""
        return self._process.pid

    @property
    def suspended(self) -> bool:
        """Return whether `suspend()` stopped the encode and `resume()` has not continued it."""
        return self._suspended

    async def wait(self) -> EncodeResult:
        """Return how the encode ended, once it has and its output has been read. If the
        task awaiting this is cancelled, kill the encode's process group first."""
        try:
            return await asyncio.shield(self._outcome)
        except asyncio.CancelledError:
            self._signal_group(signal.SIGKILL)
            raise

    async def cancel(self, *, grace: float = 5.0) -> None:
        """Ask the encode's process group to stop (SIGTERM), kill it (SIGKILL) if it has not
        within `grace` seconds, and return once it has ended; `wait()` then reports
        cancelled=True. An encode that already ended is left as it ended."""
        if self._process.returncode is not None:
            return
        self._cancelled = True
        self._signal_group(signal.SIGTERM)
        self._signal_group(signal.SIGCONT)  # a suspended encode must run to act on SIGTERM
        try:
            try:
                await asyncio.wait_for(asyncio.shield(self._process.wait()), timeout=grace)
            except TimeoutError:
                self._signal_group(signal.SIGKILL)
            await asyncio.shield(self._outcome)
        except asyncio.CancelledError:
            self._signal_group(signal.SIGKILL)
            raise

    def suspend(self) -> None:
        """Stop the encode's process group (SIGSTOP) where it is; `resume()` continues it."""
        if self._process.returncode is None:
            self._signal_group(signal.SIGSTOP)
            self._suspended = True

    def resume(self) -> None:
        """Continue an encode that `suspend()` stopped (SIGCONT)."""
        if self._process.returncode is None:
            self._signal_group(signal.SIGCONT)
        self._suspended = False

    def _signal_group(self, signal_number: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signal_number)

    async def _follow(self) -> EncodeResult:
        """Read both pipes to their end and wait for the process; return the result."""
        stdout, stderr = self._process.stdout, self._process.stderr
        if stdout is None or stderr is None:
            raise RuntimeError("the encoder was started without pipes")
        readers = asyncio.gather(self._read_stdout(stdout), self._read_stderr(stderr))
        readers.add_done_callback(_consume_outcome)  # a cancelled reader must not be reported as lost
        try:
            exit_code = await self._process.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(readers), timeout=_DRAIN_SECONDS)
            self._signal_group(signal.SIGKILL)  # nothing of the encode may outlive HandBrakeCLI
            try:
                await asyncio.wait_for(readers, timeout=_DRAIN_SECONDS)
            except TimeoutError:
                log.warning("encoder pipes still open after its process group was killed", pid=self.pid)
        except asyncio.CancelledError:
            self._signal_group(signal.SIGKILL)
            readers.cancel()
            raise
        self._suspended = False
        return EncodeResult(
            exit_code=exit_code,
            work_done_error=self._work_done_error,
            stderr_tail=tuple(self._stderr_tail),
            cancelled=self._cancelled,
        )

    async def _read_stdout(self, stream: asyncio.StreamReader) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := await stream.read(_CHUNK_BYTES):
            self._handle(self._parser.feed(decoder.decode(chunk)))
        self._handle(self._parser.feed(decoder.decode(b"", final=True)) + self._parser.finish())

    async def _read_stderr(self, stream: asyncio.StreamReader) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        partial = ""
        while chunk := await stream.read(_CHUNK_BYTES):
            *lines, partial = (partial + decoder.decode(chunk)).split("\n")
            partial = partial[-_MAX_STDERR_LINE_CHARS:]
            self._keep_stderr(lines)
        self._keep_stderr([partial + decoder.decode(b"", final=True)])

    def _keep_stderr(self, lines: list[str]) -> None:
        for line in lines:
            text = line.rstrip("\r")[-_MAX_STDERR_LINE_CHARS:]
            if text.strip():
                self._stderr_tail.append(text)

    def _handle(self, events: list[Progress | WorkDone]) -> None:
        for event in events:
            if isinstance(event, WorkDone):
                self._work_done_error = event.error
                continue
            try:
                self._on_progress(event)
            except Exception:
                log.exception("progress callback failed", pid=self.pid)


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


@functools.cache
def _usable_setpriv() -> str | None:
    """Return setpriv's path if it can run here (a seccomp filter that denies capset, such as
    systemd's ~@privileged, makes it fail before it starts anything), else None. Asked once."""
    setpriv = shutil.which("setpriv")
    true = shutil.which("true")
    if setpriv is None or true is None:
        return None
    try:
        probe = subprocess.run(  # noqa: S603 - fixed argv of two found executables
            [setpriv, "--pdeathsig", "KILL", true], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return setpriv if probe.returncode == 0 else None


def low_priority_prefix(nice: int) -> tuple[tuple[str, ...], bool]:
    """Given the niceness wanted, return the argv prefix that makes the child die with the
    agent and run at that niceness and low I/O priority, and whether the niceness must be
    set after the start instead (no `nice` on PATH)."""
    setpriv, nice_tool, ionice = _usable_setpriv(), shutil.which("nice"), shutil.which("ionice")
    prefix: tuple[str, ...] = ()
    if setpriv:
        prefix += (setpriv, "--pdeathsig", "KILL")
    # `nice -n` adds to the agent's own niceness; an encode can only be made nicer than the agent.
    increment = nice - os.getpriority(os.PRIO_PROCESS, 0)
    if nice_tool and increment > 0:
        prefix += (nice_tool, "-n", str(increment))
    if ionice:
        prefix += (ionice, "-t", "-c", "2", "-n", "7", ionice, "-t", "-c", "3")
    stdbuf = shutil.which("stdbuf")
    if stdbuf:
        # Into a pipe, HandBrakeCLI's stdout is block-buffered: progress would come in bursts
        # of a dozen updates every few seconds. Line-buffered, each update comes as it is made.
        prefix += (stdbuf, "-oL")
    return prefix, increment > 0 and not nice_tool


async def start_low_priority(argv: Sequence[str], *, nice: int, stdout: int) -> asyncio.subprocess.Process:
    """Start argv in a session of its own at niceness nice and low I/O priority, dying with the
    agent (low_priority_prefix); stdin empty, stderr a pipe, stdout as given. Return the process."""
    prefix, renice_after_start = low_priority_prefix(nice)
    process = await asyncio.create_subprocess_exec(
        *prefix,
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    if renice_after_start:
        lower_priority(process.pid, nice=nice)
    return process


# The lowest best-effort I/O priority, for hosts where the idle class is refused.
_BEST_EFFORT_LOWEST = 7


def lower_priority(pid: int, *, nice: int) -> None:
    """Given a process id, set its niceness and the idle I/O class (else best-effort 7).

    A process that has already exited is ignored. Raising niceness is always allowed; lowering it
    below the agent's own needs privileges, and a refusal is logged rather than raised, since the
    encode is then still at least as nice as the agent.
    """
    try:
        process = psutil.Process(pid)
        try:
            process.nice(nice)
        except psutil.AccessDenied:
            log.warning("nice refused", pid=pid, nice=nice, current=process.nice())
        try:
            process.ionice(psutil.IOPRIO_CLASS_IDLE)
        except psutil.AccessDenied:
            process.ionice(psutil.IOPRIO_CLASS_BE, value=_BEST_EFFORT_LOWEST)
    except psutil.NoSuchProcess:  # also a zombie: it has finished
        return
