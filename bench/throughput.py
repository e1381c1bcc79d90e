"""What does `hb2r run` cost on top of HandBrakeCLI, and what does it cost when it has nothing to do?

Three measurements, each against a baseline taken in the same run on the same machine; each lives in
its own file, with its method and targets, and runs alone too:

1. Overhead (bench/throughput_overhead.py): N clips encoded by `hb2r run` (max_jobs 1) vs a bash loop
   calling HandBrakeCLI with the agent's argv; target median hb2r / median loop <= 1.10.
2. Concurrency (bench/throughput_concurrency.py): the same clips with `max_jobs: auto` and with 8;
   target auto / 8 <= 1.0, memory peaks within the configured limits.
3. Idle (bench/throughput_idle.py): 10,000 stable files the time window keeps from starting; target
   CPU <= 1 % of one core over a minute, RSS <= 100 MB.

A watcher (every 2 s, ~0.3 % of one core) notes HandBrakeCLI, ffmpeg, ffprobe and pytest
processes that are not the benchmark's own: when a part had company, it says its figures are
noisy. Exits non-zero only if something failed to run (an encode, the agent, a deadline); a missed
target prints MISS and still exits 0.

Shared: bench/throughput_support.py (the agent as a process, timed; memory sampling; the log's
account of the time), bench/bench_support.py and tests/support/.

    .venv/bin/python bench/throughput.py [--clips 8] [--seconds 10] [--runs 3]
        [--idle-files 10000] [--idle-seconds 60] [--warmup 10] [--parts overhead,concurrency,idle] [--keep DIR]
    quick: .venv/bin/python bench/throughput.py --clips 2 --seconds 2 --runs 1 --idle-files 1000 --idle-seconds 5
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from bench_support import Step, run_steps
from throughput_concurrency import concurrency_heading, concurrency_part
from throughput_idle import add_idle_arguments, idle_step
from throughput_overhead import add_clip_arguments, clips_for, deadline_for, overhead_heading, overhead_part

PARTS = ("overhead", "concurrency", "idle")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_clip_arguments(parser)
    add_idle_arguments(parser)
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to run")
    arguments = parser.parse_args()
    parts = {part.strip() for part in arguments.parts.split(",") if part.strip()}
    if unknown := parts - set(PARTS):
        parser.error(f"bad --parts {sorted(unknown)}")
    deadline = deadline_for(arguments)
    clips: list[Path] = []
    encoding: dict[str, tuple[str, Callable[..., None]]] = {
        "overhead": (overhead_heading(arguments.runs), overhead_part),
        "concurrency": (concurrency_heading(arguments.runs), concurrency_part),
    }
    steps: list[Step] = []
    if parts & set(encoding):
        steps.append((None, "", lambda work: clips.extend(clips_for(arguments, work))))
    for part, (heading, run) in encoding.items():
        if part in parts:
            steps.append(
                (part, heading, lambda work, run=run: run(clips, work, runs=arguments.runs, deadline=deadline))
            )
    if "idle" in parts:
        steps.append(idle_step(arguments))
    run_steps(steps, keep=arguments.keep, prefix="hb2r-throughput-")


if __name__ == "__main__":
    main()
