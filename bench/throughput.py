"""What does `hb2r run` cost on top of HandBrakeCLI, and what does it cost when it has nothing to do?

Three measurements, each against a baseline taken in the same run on the same machine:

1. Overhead. N clips (default 8 x 10 s, 640x360, testsrc2 + sine, libx264 ultrafast) are
   made once with ffmpeg. Baseline: a bash `for` loop calling HandBrakeCLI on them one after
   another, with the argv the agent builds (`agent.handbrake.command.encode_argv`: `--json`,
   `--preset "Very Fast 480p30"`, `--format av_mkv`), stdout and stderr to /dev/null, at the
   shell's own priority. hb2r: a fresh archive and state folder, `hb2r run` with `max_jobs: 1`,
   `stable_after: 0s`, `scan.interval: 1s` and limits that never bind, timed from just before
   the process is started until all N outputs are in the archive (polled every 50 ms), then
   SIGTERM (it must exit 0). Target: median hb2r / median loop <= 1.10. The rounds are
   interleaved (loop, hb2r, loop, hb2r, ...) so drift in machine load hits both alike. The
   agent's log splits its time into start-up, encode+verify+publish per job, the gaps between
   a publish and the next start, and the agent's own CPU.
2. Concurrency. The same clips with `max_jobs: auto` and with `max_jobs: 8`, `memory_percent: 80`
   (the rest as in 1), interleaved, medians of wall time each; target auto / 8 <= 1.0 (a few
   percent either way is noise: the spread of the runs is printed). Every 0.2 s a thread
   samples the RSS of the agent plus all its descendants (HandBrakeCLI, ffprobe) summed, the
   number of HandBrakeCLI processes, and the system's memory percent and available memory;
   the peaks are compared with the configured limits (memory_percent 80, min_free_memory
   64 MiB). That sampler costs about 2.5 ms of CPU a sample (~1 % of one core), which the CPU
   gate sees too. Printed with both runs: how long a queued job waited while a slot was
   free (from the log: gate refusals and the one-admission-a-tick pace), and the gate's
   reasons from the log, numbers folded, counted.
3. Idle. What state the idle library is in: 10,000 files of 19 bytes named like videos
   (`Show NNNN/Season NN/... .mkv`) under the source, all stable (`stable_after: 0s`), none
   encoded (nothing in the archive, empty ledger), with `limits.windows` set to a one-hour
   window starting two hours from now, so the gate admits nothing while every pass still
   walks, remembers and plans the whole library. The first pass fingerprints the first 500
   files (ENQUEUE_BUDGET) and queues 500 jobs, which stay queued; later passes plan the same
   10,000 transcodes, find those 500 already queued (their fingerprints come from the scan
   memory), so they read no file content and queue nothing new (the job count at the end is
   printed to show it). The dispatcher meanwhile asks the gate every 2 s. After a warm-up of
   10 s that also waits for the first pass to have queued its jobs, the agent's CPU time
   (user + system, all threads, via psutil) over 60 s of wall time is measured, with RSS at
   the end and at its peak (sampled every second). With `scan.interval: 60s` (the default) the
   window holds one pass; the same with `10s` (six passes) is printed as context.
   Targets: CPU <= 1 % averaged over the minute, RSS <= 100 MB.

A watcher (every 2 s, ~0.3 % of one core) notes HandBrakeCLI, ffmpeg, ffprobe and pytest
processes that are not the benchmark's own: when a part had company, it says its figures are
noisy. Exits non-zero only if something failed to run (an encode, the agent, a deadline); a missed
target prints MISS and still exits 0.

    .venv/bin/python bench/throughput.py [--clips 8] [--seconds 10] [--runs 3]
        [--idle-files 10000] [--idle-seconds 60] [--warmup 10] [--parts overhead,concurrency,idle] [--keep DIR]
    quick: .venv/bin/python bench/throughput.py --clips 2 --seconds 2 --runs 1 --idle-files 1000 --idle-seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agent.config.models import Limits, Preset  # noqa: E402 - after the path set-up above
from agent.gate import max_jobs as gate_max_jobs  # noqa: E402
from agent.handbrake.command import encode_argv  # noqa: E402
from agent.resources import cpu_count  # noqa: E402

HB2R = [sys.executable, "-m", "agent"]
HANDBRAKE = "HandBrakeCLI"
PRESET = "Very Fast 480p30"
OUTPUT = "Out"
POLL_SECONDS = 0.05
SAMPLE_SECONDS = 0.2
MiB = 1024 * 1024


class BenchError(Exception):
    """Something the benchmark needs failed to run."""


# --- inputs ---------------------------------------------------------------------------------


def make_clip(path: Path, *, seconds: float, size: str) -> None:
    subprocess.run(
        [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
            "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", str(seconds),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-shortest", str(path),
        ],
        check=True,
    )  # fmt: skip


def make_clips(folder: Path, *, count: int, seconds: float, size: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    clips = [folder / f"clip {index:02d}.mkv" for index in range(count)]
    for clip in clips:
        if not clip.exists():
            make_clip(clip, seconds=seconds, size=size)
    return clips


def make_tree(source: Path, files: int) -> None:
    """Shows / seasons / episodes, 100 files a folder, 19 bytes each (as bench/scan.py)."""
    made, show = 0, 0
    while made < files:
        for season in range(10):
            folder = source / f"Show {show:04d}" / f"Season {season:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for episode in range(min(100, files - made)):
                (folder / f"Show {show:04d} - S{season:02d}E{episode:03d}.mkv").write_bytes(b"not really a video\n")
                made += 1
            if made >= files:
                break
        show += 1


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
    for folder in ("source", "archive"):
        (root / folder).mkdir(exist_ok=True)
    window_line = f"  windows: ['{windows}']\n" if windows else ""
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        f"  - {{name: bench, source: source, output: {OUTPUT}, preset: p, stable_after: 0s}}\n"
        "presets:\n"
        f"  p: {{handbrake: '{PRESET}', container: mkv}}\n"
        f"scan: {{interval: {interval}}}\n"
        "limits:\n"
        "  cpu_percent: 100\n"
        f"  memory_percent: {memory_percent}\n"
        "  min_free_memory: 64MiB\n"
        "  min_free_disk: 1MiB\n"
        f"  max_jobs: {max_jobs}\n"
        f"{window_line}"
        "retry: {attempts: 1, backoff: 1s, max_backoff: 1s}\n"
        "auth: {jwt_secret_file: state/jwt.secret}\n"
        f"server: {{listen: '127.0.0.1:{free_port()}'}}\n"
    )
    return config


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def window_excluding_now() -> str:
    """A one-hour window that starts two hours from now (local time): it excludes the whole run."""
    start = datetime.now().astimezone() + timedelta(hours=2)
    end = start + timedelta(hours=1)
    return f"{start:%H:%M}-{end:%H:%M}"


# --- the agent as a process -------------------------------------------------------------------


class Agent:
    """One `hb2r run` process, its log file and its start time (wall clock, to compare with the log)."""

    def __init__(self, config: Path) -> None:
        self.root = config.parent
        self.log_path = self.root / "agent.log"
        self._log_file = self.log_path.open("wb")
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [*HB2R, "run", str(config)],
            cwd=REPO,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.ps = psutil.Process(self.process.pid)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and (name is None or event.get("event") == name):
                lines.append(event)
        return lines

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def check_alive(self, what: str) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"agent exited ({self.process.returncode}) while {what}:\n{self.tail()}")
        dead = self.events("job dead") + self.events("job failed")
        if dead:
            raise BenchError(f"a job failed while {what}: {dead[0]}")

    def stop(self) -> int:
        """SIGTERM, wait; raise BenchError unless it exits 0 within 15 s."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                raise BenchError(f"agent did not exit within 15 s of SIGTERM:\n{self.tail()}") from None
            if code != 0:
                raise BenchError(f"agent exited {code} on SIGTERM:\n{self.tail()}")
            return code
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # its encoders die with it (setpriv --pdeathsig)
            self.process.wait()
        self._log_file.close()


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


def wait_until_published(agent: Agent, count: int, *, deadline: float) -> float:
    """Poll the archive until `count` outputs are there; return seconds since the agent's start."""
    archive = agent.root / "archive"
    end = time.perf_counter() + deadline
    while True:
        if published(archive) >= count:
            return time.perf_counter() - agent.started
        if time.perf_counter() > end:
            raise BenchError(
                f"timed out: {published(archive)} of {count} published after {deadline:.0f}s\n{agent.tail()}"
            )
        agent.check_alive(f"waiting for {count} outputs")
        time.sleep(POLL_SECONDS)


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


class Interference(threading.Thread):
    """Every 2 s: encoders and test runs on this machine that are not the benchmark's own.

    They compete for the same two cores and make the figures noisy; each part says if it saw any.
    """

    NAMES = frozenset({HANDBRAKE, "ffmpeg", "ffprobe"})

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: set[tuple[int, str]] = set()
        self._halt = threading.Event()
        self._own = os.getpid()

    def run(self) -> None:
        while not self._halt.wait(2.0):
            for process in psutil.process_iter(["name"]):
                try:
                    name = process.info["name"] or ""
                    if name not in self.NAMES and not (
                        name.startswith("python") and any("pytest" in arg for arg in process.cmdline()[:4])
                    ):
                        continue
                    if any(parent.pid == self._own for parent in process.parents()):
                        continue
                    self.seen.add((process.pid, name if name in self.NAMES else "pytest"))
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue

    def report(self, part: str) -> None:
        """Print what was seen since the last report, and forget it."""
        if self.seen:
            counts: dict[str, int] = {}
            for _, name in self.seen:
                counts[name] = counts.get(name, 0) + 1
            listed = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
            print(f"  NOTE: other processes competed for the CPU during {part} ({listed}): figures are noisy")
        self.seen.clear()

    def finish(self) -> None:
        self._halt.set()
        self.join()


# --- 1. overhead ------------------------------------------------------------------------------


def baseline_script(names: list[str]) -> str:
    """The bash loop: the agent's own argv for each clip, one after another."""
    argv = encode_argv(
        binary=HANDBRAKE, preset=Preset(handbrake=PRESET, container="mkv"), source=Path("@IN@"), output=Path("@OUT@")
    )
    words = [
        '"$SRC/$name"' if arg == "@IN@" else '"$OUT/$name"' if arg == "@OUT@" else shlex.quote(arg) for arg in argv
    ]
    quoted = " ".join(shlex.quote(name) for name in names)
    return f"set -e\nfor name in {quoted}; do\n  {' '.join(words)} >/dev/null 2>&1\ndone\n"


def time_baseline(clips: list[Path], work: Path) -> float:
    out = work / "loop-out"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    script = baseline_script([clip.name for clip in clips])
    environment = {**os.environ, "SRC": str(clips[0].parent), "OUT": str(out)}
    started = time.perf_counter()
    finished = subprocess.run(["bash", "-c", script], env=environment, check=False)
    elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        raise BenchError(f"the HandBrakeCLI loop failed with exit {finished.returncode}")
    made = [path for path in out.iterdir() if path.stat().st_size > 0]
    if len(made) != len(clips):
        raise BenchError(f"the HandBrakeCLI loop made {len(made)} of {len(clips)} outputs")
    return elapsed


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
    agent = Agent(config)
    try:
        sampler = TreeSampler(agent.process.pid) if sample else None
        if sampler is not None:
            sampler.start()
        try:
            wall = wait_until_published(agent, len(clips), deadline=deadline)
            times = agent.ps.cpu_times()
        finally:
            peaks = sampler.finish() if sampler is not None else None
        agent.stop()
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


def summarize(agent: Agent, *, wall: float, agent_cpu: float, peaks: MemoryPeaks | None, cap: int) -> AgentRun:
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


def overhead(clips: list[Path], work: Path, *, runs: int, deadline: float) -> None:
    time_baseline(clips[:1], work)  # warm the page cache and HandBrake's own files
    loop_times: list[float] = []
    agent_runs: list[AgentRun] = []
    for round_number in range(runs):
        loop_times.append(time_baseline(clips, work))
        agent_runs.append(run_agent(clips, work / f"overhead-{round_number}", max_jobs="1", deadline=deadline))
        print(f"  round {round_number + 1}: loop {loop_times[-1]:.2f}s, hb2r {agent_runs[-1].wall:.2f}s", flush=True)
    loop = statistics.median(loop_times)
    hb2r = statistics.median(run.wall for run in agent_runs)
    ratio = hb2r / loop
    per_encode = loop / len(clips)
    print(f"clips:                        {len(clips)}")
    print(f"HandBrakeCLI loop (median):   {loop:.2f}s  ({per_encode:.2f}s an encode)  runs {_list(loop_times)}")
    print(f"hb2r run max_jobs 1 (median): {hb2r:.2f}s  runs {_list([run.wall for run in agent_runs])}")
    print(f"ratio hb2r/loop:              {ratio:.3f}  (target <= 1.10)  {_verdict(ratio <= 1.10)}")
    print("where hb2r's time goes (medians over the runs):")
    startup = statistics.median(run.startup for run in agent_runs)
    span = statistics.median(statistics.median(run.job_spans) for run in agent_runs if run.job_spans)
    gap_values = [gap for run in agent_runs for gap in run.gaps]
    gap_total = statistics.median(sum(run.gaps) for run in agent_runs)
    detect = statistics.median(run.detect for run in agent_runs)
    cpu = statistics.median(run.agent_cpu for run in agent_runs)
    ready = statistics.median(run.ready for run in agent_runs)
    print(f"  start -> 'agent started':   {ready:.2f}s (imports, database, HandBrakeCLI --preset-list/--version)")
    print(f"  start -> first job started: {startup:.2f}s")
    print(
        f"  job started -> published:   {span:.2f}s a job  "
        f"(loop: {per_encode:.2f}s an encode; +{span - per_encode:.2f}s)"
    )
    if gap_values:
        print(
            f"  published -> next started:  median {statistics.median(gap_values):.2f}s, "
            f"max {max(gap_values):.2f}s, {gap_total:.2f}s a run in all"
        )
    print(f"  last published -> seen:     {detect:.2f}s (the bench's polling)")
    print(f"  a job waited, slot free:    {statistics.median(run.slot_wait for run in agent_runs):.2f}s a run")
    print(f"  agent's own CPU:            {cpu:.2f}s  ({100 * cpu / hb2r:.1f}% of one core over the run)")
    _print_log_notes(agent_runs)


# --- 2. concurrency ---------------------------------------------------------------------------


def concurrency(clips: list[Path], work: Path, *, runs: int, deadline: float) -> None:
    results: dict[str, list[AgentRun]] = {"auto": [], "8": []}
    for round_number in range(runs):
        for max_jobs in ("auto", "8"):
            run = run_agent(
                clips,
                work / f"concurrency-{max_jobs}-{round_number}",
                max_jobs=max_jobs,
                memory_percent=80,
                deadline=deadline,
                sample=True,
            )
            results[max_jobs].append(run)
            print(f"  round {round_number + 1}: max_jobs {max_jobs}: {run.wall:.2f}s", flush=True)
    total = psutil.virtual_memory().total
    medians = {}
    for max_jobs, agent_runs in results.items():
        walls = [run.wall for run in agent_runs]
        medians[max_jobs] = statistics.median(walls)
        peaks = [run.peaks for run in agent_runs if run.peaks is not None]
        tree = max(peak.tree_rss for peak in peaks)
        percent = max(peak.memory_percent for peak in peaks)
        available = min(peak.min_available for peak in peaks)
        encoders = max(peak.encoders for peak in peaks)
        spread = (max(walls) - min(walls)) / medians[max_jobs] * 100
        print(
            f"max_jobs {max_jobs:<4}  wall median {medians[max_jobs]:.2f}s  runs {_list(walls)} (spread {spread:.1f}%)"
        )
        print(
            f"  peak RSS agent+children:    {tree / MiB:.0f} MiB ({100 * tree / total:.1f}% of {total / 2**30:.1f} GiB)"
            f"; at most {encoders} HandBrakeCLI at once"
        )
        print(
            f"  peak system memory:         {percent:.1f}% (limit memory_percent 80) {_verdict(percent < 80)}; "
            f"least available {available / MiB:.0f} MiB (min_free_memory 64 MiB) {_verdict(available >= 64 * MiB)}"
        )
        print(
            f"  a job waited, slot free:    {statistics.median(run.slot_wait for run in agent_runs):.2f}s a run "
            f"(median; max_jobs {max_jobs} = {gate_max_jobs(Limits(max_jobs=max_jobs), cpu_count=cpu_count())} here)"
        )
        _print_log_notes(agent_runs, indent="  ")
    ratio = medians["auto"] / medians["8"]
    print(f"cores:                        {psutil.cpu_count(logical=True)}")
    print(
        f"ratio auto/8:                 {ratio:.3f}  (target <= 1.0; within a few % is noise)  {_verdict(ratio <= 1.0)}"
    )


# --- 3. idle ----------------------------------------------------------------------------------


@dataclass
class IdleResult:
    cpu_percent: float
    rss_end: int
    rss_peak: int
    warmup: float
    jobs: dict[str, int]


def idle(root: Path, *, files: int, interval: str, warmup: float, seconds: float) -> IdleResult:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    make_tree(root / "source", files)
    expected_jobs = min(files, 500)  # engine.ENQUEUE_BUDGET: what the first pass queues
    config = write_config(root, max_jobs="1", interval=interval, windows=window_excluding_now())
    agent = Agent(config)
    try:
        # Warm-up: at least `warmup` seconds, and until the first pass has queued its jobs.
        end = time.perf_counter() + max(120.0, warmup * 10)
        while True:
            agent.check_alive("warming up")
            elapsed = time.perf_counter() - agent.started
            if elapsed >= warmup and jobs_by_state(root).get("queued", 0) >= expected_jobs:
                break
            if time.perf_counter() > end:
                raise BenchError(f"the first pass did not queue {expected_jobs} jobs in time: {jobs_by_state(root)}")
            time.sleep(0.2)
        warmed = time.perf_counter() - agent.started
        before, started = agent.ps.cpu_times(), time.perf_counter()
        rss_peak = 0
        while time.perf_counter() - started < seconds:
            rss_peak = max(rss_peak, agent.ps.memory_info().rss)
            time.sleep(min(1.0, max(0.0, seconds - (time.perf_counter() - started))))
        after, wall = agent.ps.cpu_times(), time.perf_counter() - started
        rss_end = agent.ps.memory_info().rss
        agent.check_alive("measuring")
        if agent.events("job started"):
            raise BenchError("a job started although the time window excludes now")
        jobs = jobs_by_state(root)
        agent.stop()
    finally:
        agent.close()
    cpu = (after.user + after.system) - (before.user + before.system)
    return IdleResult(100 * cpu / wall, rss_end, max(rss_peak, rss_end), warmed, jobs)


def idle_part(work: Path, *, files: int, warmup: float, seconds: float) -> None:
    for interval, label in (("60s", "target"), ("10s", "context")):
        result = idle(work / f"idle-{interval}", files=files, interval=interval, warmup=warmup, seconds=seconds)
        cpu_ok, rss_ok = result.cpu_percent <= 1.0, result.rss_end <= 100e6
        print(
            f"scan.interval {interval} ({label}), {files} files, "
            f"after {result.warmup:.1f}s warm-up, {seconds:.0f}s measured:"
        )
        print(
            f"  CPU:                        {result.cpu_percent:.2f}% of one core  (target <= 1%)  {_verdict(cpu_ok)}"
        )
        print(
            f"  RSS at end:                 {result.rss_end / 1e6:.0f} MB (peak {result.rss_peak / 1e6:.0f} MB)  "
            f"(target <= 100 MB)  {_verdict(rss_ok)}"
        )
        print(f"  jobs at end:                {result.jobs}")


# --- output -----------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _list(values: list[float]) -> str:
    return "[" + ", ".join(f"{value:.2f}" for value in values) + "]"


def _print_log_notes(agent_runs: list[AgentRun], indent: str = "  ") -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=8, help="number of clips (default 8)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each clip (default 10)")
    parser.add_argument("--size", default="640x360", help="clip frame size (default 640x360)")
    parser.add_argument("--runs", type=int, default=3, help="rounds of the overhead and concurrency runs (default 3)")
    parser.add_argument("--idle-files", type=int, default=10_000, help="files in the idle library (default 10000)")
    parser.add_argument("--idle-seconds", type=float, default=60, help="idle measurement window (default 60)")
    parser.add_argument("--warmup", type=float, default=10, help="idle warm-up before measuring (default 10)")
    parser.add_argument("--parts", default="overhead,concurrency,idle", help="comma-separated parts to run")
    parser.add_argument("--keep", type=Path, help="work here and keep everything (clips, logs, archives)")
    arguments = parser.parse_args()
    parts = {part.strip() for part in arguments.parts.split(",") if part.strip()}
    unknown = parts - {"overhead", "concurrency", "idle"}
    if unknown or arguments.clips < 1 or arguments.runs < 1:
        parser.error(f"bad --parts {sorted(unknown)}" if unknown else "--clips and --runs must be at least 1")
    for tool in ("ffmpeg", HANDBRAKE):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (make system-packages)")

    work = arguments.keep or Path(tempfile.mkdtemp(prefix="hb2r-throughput-"))
    deadline = 120 + arguments.clips * arguments.seconds * 3
    interference = Interference()
    interference.start()
    try:
        clips: list[Path] = []
        if parts & {"overhead", "concurrency"}:
            began = time.perf_counter()
            clips = make_clips(work / "clips", count=arguments.clips, seconds=arguments.seconds, size=arguments.size)
            print(
                f"made {len(clips)} clips of {arguments.seconds:g}s {arguments.size} "
                f"in {time.perf_counter() - began:.1f}s"
            )
        if "overhead" in parts:
            print(f"== 1. overhead: hb2r run (max_jobs 1) vs a HandBrakeCLI loop, {arguments.runs} rounds", flush=True)
            overhead(clips, work, runs=arguments.runs, deadline=deadline)
            interference.report("overhead")
        if "concurrency" in parts:
            print(f"== 2. concurrency: max_jobs auto vs 8, memory_percent 80, {arguments.runs} rounds", flush=True)
            concurrency(clips, work, runs=arguments.runs, deadline=deadline)
            interference.report("concurrency")
        if "idle" in parts:
            print(f"== 3. idle: {arguments.idle_files} files, nothing may start (time window)", flush=True)
            idle_part(work, files=arguments.idle_files, warmup=arguments.warmup, seconds=arguments.idle_seconds)
            interference.report("idle")
    except (BenchError, subprocess.CalledProcessError, OSError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        interference.finish()
        if arguments.keep is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
