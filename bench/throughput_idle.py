"""What `hb2r run` costs when it has nothing to do: CPU and memory over a minute of an idle library.

Idle. What state the idle library is in: 10,000 files of 19 bytes named like videos
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

Part of bench/throughput.py (`make bench-throughput` runs all three parts); alone:

    .venv/bin/python bench/throughput_idle.py [--idle-files 10000] [--idle-seconds 60] [--warmup 10] [--keep DIR]
    quick: .venv/bin/python bench/throughput_idle.py --idle-files 1000 --idle-seconds 5
"""

from __future__ import annotations

import argparse
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench_support import BenchError, make_tree, run_steps, verdict
from throughput_support import check_alive, jobs_by_state, start_agent, stop_agent, window_excluding_now, write_config


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
    agent, process = start_agent(config)
    try:
        # Warm-up: at least `warmup` seconds, and until the first pass has queued its jobs.
        end = time.perf_counter() + max(120.0, warmup * 10)
        while True:
            check_alive(agent, "warming up")
            elapsed = time.perf_counter() - agent.started
            if elapsed >= warmup and jobs_by_state(root).get("queued", 0) >= expected_jobs:
                break
            if time.perf_counter() > end:
                raise BenchError(f"the first pass did not queue {expected_jobs} jobs in time: {jobs_by_state(root)}")
            time.sleep(0.2)
        warmed = time.perf_counter() - agent.started
        before, started = process.cpu_times(), time.perf_counter()
        rss_peak = 0
        while time.perf_counter() - started < seconds:
            rss_peak = max(rss_peak, process.memory_info().rss)
            time.sleep(min(1.0, max(0.0, seconds - (time.perf_counter() - started))))
        after, wall = process.cpu_times(), time.perf_counter() - started
        rss_end = process.memory_info().rss
        check_alive(agent, "measuring")
        if agent.events("job started"):
            raise BenchError("a job started although the time window excludes now")
        jobs = jobs_by_state(root)
        stop_agent(agent)
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
        print(f"  CPU:                        {result.cpu_percent:.2f}% of one core  (target <= 1%)  {verdict(cpu_ok)}")
        print(
            f"  RSS at end:                 {result.rss_end / 1e6:.0f} MB (peak {result.rss_peak / 1e6:.0f} MB)  "
            f"(target <= 100 MB)  {verdict(rss_ok)}"
        )
        print(f"  jobs at end:                {result.jobs}")


def add_idle_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--idle-files", type=int, default=10_000, help="files in the idle library (default 10000)")
    parser.add_argument("--idle-seconds", type=float, default=60, help="idle measurement window (default 60)")
    parser.add_argument("--warmup", type=float, default=10, help="idle warm-up before measuring (default 10)")


def idle_step(arguments: argparse.Namespace) -> tuple[str, str, Callable[[Path], None]]:
    """The idle part as a step of bench_support.run_steps."""
    return (
        "idle",
        f"== 3. idle: {arguments.idle_files} files, nothing may start (time window)",
        lambda work: idle_part(
            work, files=arguments.idle_files, warmup=arguments.warmup, seconds=arguments.idle_seconds
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_idle_arguments(parser)
    parser.add_argument("--keep", type=Path, help="work here and keep everything (the library, logs)")
    arguments = parser.parse_args()
    run_steps([idle_step(arguments)], keep=arguments.keep, prefix="hb2r-idle-", tools=())


if __name__ == "__main__":
    main()
