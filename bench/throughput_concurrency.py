"""Does `max_jobs: auto` finish the same clips as fast as `max_jobs: 8`, within the memory limits?

Concurrency. The same clips with `max_jobs: auto` and with `max_jobs: 8`, `memory_percent: 80`
(the rest as in 1), interleaved, medians of wall time each; target auto / 8 <= 1.0 (a few
percent either way is noise: the spread of the runs is printed). Every 0.2 s a thread
samples the RSS of the agent plus all its descendants (HandBrakeCLI, ffprobe) summed, the
number of HandBrakeCLI processes, and the system's memory percent and available memory;
the peaks are compared with the configured limits (memory_percent 80, min_free_memory
64 MiB). That sampler costs about 2.5 ms of CPU a sample (~1 % of one core), which the CPU
gate sees too. Printed with both runs: how long a queued job waited while a slot was
free (from the log: gate refusals and the one-admission-a-tick pace), and the gate's
reasons from the log, numbers folded, counted.

Part of bench/throughput.py (`make bench-throughput` runs all three parts); alone:

    .venv/bin/python bench/throughput_concurrency.py [--clips 8] [--seconds 10] [--runs 3] [--keep DIR]
    quick: .venv/bin/python bench/throughput_concurrency.py --clips 2 --seconds 2 --runs 1
"""

from __future__ import annotations

import statistics
from pathlib import Path

import psutil
from bench_support import listed, verdict
from throughput_overhead import encoding_main
from throughput_support import AgentRun, MiB, print_log_notes, run_agent

from agent.config.models import Limits
from agent.gate import max_jobs as gate_max_jobs
from agent.resources import cpu_count


def concurrency_part(clips: list[Path], work: Path, *, runs: int, deadline: float) -> None:
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
            f"max_jobs {max_jobs:<4}  wall median {medians[max_jobs]:.2f}s  runs {listed(walls)} (spread {spread:.1f}%)"
        )
        print(
            f"  peak RSS agent+children:    {tree / MiB:.0f} MiB ({100 * tree / total:.1f}% of {total / 2**30:.1f} GiB)"
            f"; at most {encoders} HandBrakeCLI at once"
        )
        print(
            f"  peak system memory:         {percent:.1f}% (limit memory_percent 80) {verdict(percent < 80)}; "
            f"least available {available / MiB:.0f} MiB (min_free_memory 64 MiB) {verdict(available >= 64 * MiB)}"
        )
        print(
            f"  a job waited, slot free:    {statistics.median(run.slot_wait for run in agent_runs):.2f}s a run "
            f"(median; max_jobs {max_jobs} = {gate_max_jobs(Limits(max_jobs=max_jobs), cpu_count=cpu_count())} here)"
        )
        print_log_notes(agent_runs, indent="  ")
    ratio = medians["auto"] / medians["8"]
    print(f"cores:                        {psutil.cpu_count(logical=True)}")
    print(
        f"ratio auto/8:                 {ratio:.3f}  (target <= 1.0; within a few % is noise)  {verdict(ratio <= 1.0)}"
    )


def concurrency_heading(runs: int) -> str:
    return f"== 2. concurrency: max_jobs auto vs 8, memory_percent 80, {runs} rounds"


def main() -> None:
    encoding_main(__doc__ or "", "concurrency", concurrency_heading, concurrency_part)


if __name__ == "__main__":
    main()
