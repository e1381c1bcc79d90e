"""What the throughput experiments (bench/throughput_*.py) share: clips in a fresh source folder, the
agent's config, `hb2r run` as a process (tests/support/agent_process.py) timed until its outputs are
published, a sampler of its process tree's memory, and what its log says about where the time went.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from bench_support import HANDBRAKE, BenchError

from agent.config.models import Limits
from agent.gate import max_jobs as gate_max_jobs
from agent.resources import cpu_count
from tests.support.agent_process import AgentProcess
from tests.support.configs import write_config as write_agent_config
from tests.support.waiting import wait_for

PRESET = "Very Fast 480p30"
OUTPUT = "Out"
POLL_SECONDS = 0.05
SAMPLE_SECONDS = 0.2
MiB = 1024 * 1024


def fill_source(source: Path, clips: list[Path]) -> None:
    """Put the clips into a fresh source folder (hard links where possible: no copy to time)."""
    source.mkdir(parents=True)
    for clip in clips:
        try:
            os.link(clip, source / clip.name)
        except OSError:
            shutil.copy2(clip, source / clip.name)


def write_config(
    root: Path,
    *,
    max_jobs: str,
    memory_percent: int = 100,
    interval: str = "1s",
    windows: str | None = None,
) -> Path:
    """The benchmark's library `bench` (root/source -> archive/Out, stable at once), limits that bind
    only through max_jobs and memory_percent, one attempt, and `windows` if given."""
    return write_agent_config(
        root,
        library="bench",
        source="source",
        output=OUTPUT,
        preset="p",
        stable_after="0s",
        interval=interval,
        limits={
            "cpu_percent": "100",
            "memory_percent": str(memory_percent),
            "min_free_memory": "64MiB",
            "min_free_disk": "1MiB",
        },
        max_jobs=max_jobs,
        extra_limits=f"  windows: ['{windows}']\n" if windows else "",
        attempts=1,
        backoff="1s",
        max_backoff="1s",
        bcrypt_rounds=None,
    )


def window_excluding_now() -> str:
    """A one-hour window that starts two hours from now (local time): it excludes the whole run."""
    start = datetime.now().astimezone() + timedelta(hours=2)
    end = start + timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


def start_agent(config: Path) -> tuple[AgentProcess, psutil.Process]:
    """Start `hb2r run` on config; return it and its psutil handle (for its CPU times and RSS)."""
    agent = AgentProcess(config)
    return agent, psutil.Process(agent.pid)


def check_alive(agent: AgentProcess, what: str) -> None:
    """Raise BenchError if the agent has exited or a job failed while `what`."""
    if agent.process.poll() is not None:
        raise BenchError(f"agent exited ({agent.process.returncode}) while {what}:\n{agent.log_tail()}")
    dead = agent.events("job dead") + agent.events("job failed")
    if dead:
        raise BenchError(f"a job failed while {what}: {dead[0]}")


def stop_agent(agent: AgentProcess) -> None:
    """SIGTERM; raise BenchError unless it exits 0 within the deadline (it is killed then)."""
    try:
        agent.stop_cleanly()
    except AssertionError as error:
        raise BenchError(str(error)) from None


def published(archive: Path) -> int:
    top = archive / OUTPUT
    if not top.is_dir():
        return 0
    return sum(1 for path in top.rglob("*") if path.is_file())


def jobs_by_state(root: Path) -> dict[str, int]:
    database = root / "state" / "hb2r.db"
    if not database.exists():
        return {}
    try:
        with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=5) as connection:
            return dict(connection.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
    except sqlite3.Error:
        return {}


def wait_until_published(agent: AgentProcess, count: int, *, deadline: float) -> float:
    """Poll the archive until `count` outputs are there; return seconds since the agent's start."""
    archive = agent.root / "archive"

    def all_published() -> bool:
        if published(archive) >= count:
            return True
        check_alive(agent, f"waiting for {count} outputs")
        return False

    try:
        wait_for(all_published, what=f"{count} outputs published", deadline=deadline, interval=POLL_SECONDS)
    except AssertionError:
        raise BenchError(
            f"timed out: {published(archive)} of {count} published after {deadline:.0f}s\n{agent.log_tail()}"
        ) from None
    return time.perf_counter() - agent.started


@dataclass
class MemoryPeaks:
    tree_rss: int = 0  # agent + descendants, summed
    memory_percent: float = 0.0
    min_available: int = 2**63
    encoders: int = 0  # HandBrakeCLI processes at once
    samples: int = 0


class TreeSampler(threading.Thread):
    """Every SAMPLE_SECONDS: RSS of a process and all its descendants, HandBrakeCLI count, system memory."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peaks = MemoryPeaks()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(SAMPLE_SECONDS)

    def sample(self) -> None:
        rss, encoders = 0, 0
        try:
            tree = [self.process, *self.process.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for process in tree:
            try:
                rss += process.memory_info().rss
                if process.name() == HANDBRAKE:
                    encoders += 1
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        memory = psutil.virtual_memory()
        peaks = self.peaks
        peaks.tree_rss = max(peaks.tree_rss, rss)
        peaks.encoders = max(peaks.encoders, encoders)
        peaks.memory_percent = max(peaks.memory_percent, memory.percent)
        peaks.min_available = min(peaks.min_available, memory.available)
        peaks.samples += 1

    def finish(self) -> MemoryPeaks:
        self._halt.set()
        self.join()
        return self.peaks


@dataclass
class AgentRun:
    wall: float
    agent_cpu: float  # the agent process's own user+system seconds (not its children)
    ready: float  # process start -> "agent started"
    startup: float  # process start -> first "job started"
    job_spans: list[float] = field(default_factory=list)  # "job started" -> "job published"
    gaps: list[float] = field(default_factory=list)  # "job published" -> next "job started"
    detect: float = 0.0  # last "job published" -> the bench saw all outputs
    slot_wait: float = 0.0  # seconds a queued job waited while fewer than max_jobs ran
    peaks: MemoryPeaks | None = None
    held_back: list[str] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)


def run_agent(
    clips: list[Path], root: Path, *, max_jobs: str, memory_percent: int = 100, deadline: float, sample: bool = False
) -> AgentRun:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    fill_source(root / "source", clips)
    config = write_config(root, max_jobs=max_jobs, memory_percent=memory_percent)
    agent, process = start_agent(config)
    try:
        sampler = TreeSampler(agent.pid) if sample else None
        if sampler is not None:
            sampler.start()
        try:
            wall = wait_until_published(agent, len(clips), deadline=deadline)
            times = process.cpu_times()
        finally:
            peaks = sampler.finish() if sampler is not None else None
        stop_agent(agent)
    finally:
        agent.close()
    cap = gate_max_jobs(Limits(max_jobs=max_jobs), cpu_count=cpu_count())
    return summarize(agent, wall=wall, agent_cpu=times.user + times.system, peaks=peaks, cap=cap)


def slot_wait(events: list[tuple[float, str]], cap: int) -> float:
    """Given (time, event) pairs, return how long a queued job waited while fewer than `cap` jobs ran."""
    waiting = running = 0
    waited, previous = 0.0, None
    for moment, name in sorted(events):
        if previous is not None and waiting > 0 and running < cap:
            waited += moment - previous
        previous = moment
        if name == "job queued":
            waiting += 1
        elif name == "job started":
            waiting, running = waiting - 1, running + 1
        elif name in ("job published", "job failed", "job dead"):
            running -= 1
    return waited


def summarize(agent: AgentProcess, *, wall: float, agent_cpu: float, peaks: MemoryPeaks | None, cap: int) -> AgentRun:
    def at(event: dict[str, Any]) -> float:
        return datetime.fromisoformat(str(event["timestamp"])).timestamp() - agent.started_wall

    starts = sorted(at(event) for event in agent.events("job started"))
    publishes = sorted(at(event) for event in agent.events("job published"))
    by_job: dict[object, float] = {event["job"]: at(event) for event in agent.events("job started")}
    spans = [at(event) - by_job[event["job"]] for event in agent.events("job published") if event["job"] in by_job]
    gaps = []
    for start in starts[1:]:
        before = [done for done in publishes if done <= start]
        if before:
            gaps.append(start - max(before))
    held = [str(reason) for event in agent.events("jobs held back") for reason in event.get("reasons", [])]
    lifecycle = ("job queued", "job started", "job published", "job failed", "job dead")
    moments = [(at(event), str(event["event"])) for event in agent.events() if event.get("event") in lifecycle]
    problems = [
        f"{event.get('level')}: {event.get('event')} {event.get('reason') or event.get('reasons') or ''}".strip()
        for event in agent.events()
        if event.get("level") in ("warning", "error", "critical") and event.get("event") != "jobs held back"
    ]
    # In a fresh archive every output is hb2r's own: an adoption means a pass raced a publish.
    problems += [
        f"info: {event['event']} {event.get('path', '')}"
        for event in agent.events()
        if event.get("event") in ("output adopted", "job cancelled", "job suspended", "job requeued")
    ]
    ready = [at(event) for event in agent.events("agent started")]
    return AgentRun(
        wall=wall,
        agent_cpu=agent_cpu,
        ready=ready[0] if ready else float("nan"),
        startup=starts[0] if starts else float("nan"),
        job_spans=spans,
        gaps=gaps,
        detect=wall - publishes[-1] if publishes else float("nan"),
        slot_wait=slot_wait(moments, cap),
        peaks=peaks,
        held_back=held,
        log_problems=problems,
    )


def print_log_notes(agent_runs: list[AgentRun], indent: str = "  ") -> None:
    """Print the gate's reasons (numbers folded into N, counted over all runs) and log warnings/errors."""
    kinds: dict[str, int] = {}
    for run in agent_runs:
        for reason in run.held_back:
            kind = re.sub(r"\d+(\.\d+)?", "N", reason)
            kinds[kind] = kinds.get(kind, 0) + 1
    if kinds:
        runs_held = sum(1 for run in agent_runs if run.held_back)
        print(f"{indent}'jobs held back' in {runs_held} of {len(agent_runs)} runs; reasons (times logged):")
        for kind, count in sorted(kinds.items(), key=lambda item: -item[1]):
            print(f"{indent}  {count:3d}x {kind}")
    problems: dict[str, int] = {}
    for run in agent_runs:
        for problem in run.log_problems:
            problems[problem] = problems.get(problem, 0) + 1
    for problem, count in sorted(problems.items()):
        print(f"{indent}log ({count}x over the runs): {problem}")
