"""What `hb2r run` costs on top of HandBrakeCLI, against a HandBrakeCLI loop timed in the same run.

Overhead. N clips (default 8 x 10 s, 640x360, testsrc2 + sine, libx264 ultrafast) are
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

Part of bench/throughput.py (`make bench-throughput` runs all three parts); alone:

    .venv/bin/python bench/throughput_overhead.py [--clips 8] [--seconds 10] [--runs 3] [--keep DIR]
    quick: .venv/bin/python bench/throughput_overhead.py --clips 2 --seconds 2 --runs 1
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from bench_support import HANDBRAKE, BenchError, listed, run_steps, verdict
from throughput_support import PRESET, AgentRun, print_log_notes, run_agent

from agent.config.models import Preset
from agent.handbrake.command import encode_argv
from tests.support.clips import make_clips


def add_clip_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the parts that encode clips (overhead, concurrency)."""
    parser.add_argument("--clips", type=int, default=8, help="number of clips (default 8)")
    parser.add_argument("--seconds", type=float, default=10, help="length of each clip (default 10)")
    parser.add_argument("--size", default="640x360", help="clip frame size (default 640x360)")
    parser.add_argument("--runs", type=int, default=3, help="rounds of the overhead and concurrency runs (default 3)")
    parser.add_argument("--keep", type=Path, help="work here and keep everything (clips, logs, archives)")


def deadline_for(arguments: argparse.Namespace) -> float:
    """How long a run of all the clips may take before the benchmark gives up on it."""
    if arguments.clips < 1 or arguments.runs < 1:
        raise SystemExit("--clips and --runs must be at least 1")
    return 120 + arguments.clips * arguments.seconds * 3


def clips_for(arguments: argparse.Namespace, work: Path) -> list[Path]:
    """Make (or keep) the clips the options ask for in work/clips, saying how long that took."""
    began = time.perf_counter()
    clips = make_clips(work / "clips", count=arguments.clips, seconds=arguments.seconds, size=arguments.size)
    print(f"made {len(clips)} clips of {arguments.seconds:g}s {arguments.size} in {time.perf_counter() - began:.1f}s")
    return clips


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


def overhead_part(clips: list[Path], work: Path, *, runs: int, deadline: float) -> None:
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
    print(f"HandBrakeCLI loop (median):   {loop:.2f}s  ({per_encode:.2f}s an encode)  runs {listed(loop_times)}")
    print(f"hb2r run max_jobs 1 (median): {hb2r:.2f}s  runs {listed([run.wall for run in agent_runs])}")
    print(f"ratio hb2r/loop:              {ratio:.3f}  (target <= 1.10)  {verdict(ratio <= 1.10)}")
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
    print_log_notes(agent_runs)


def overhead_heading(runs: int) -> str:
    return f"== 1. overhead: hb2r run (max_jobs 1) vs a HandBrakeCLI loop, {runs} rounds"


def encoding_main(description: str, name: str, heading: Callable[[int], str], part: Callable[..., None]) -> None:
    """Run one encoding part on its own, from the command line: its clips made first, then the part."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_clip_arguments(parser)
    arguments = parser.parse_args()
    deadline = deadline_for(arguments)
    clips: list[Path] = []
    run_steps(
        [
            (None, "", lambda work: clips.extend(clips_for(arguments, work))),
            (name, heading(arguments.runs), lambda work: part(clips, work, runs=arguments.runs, deadline=deadline)),
        ],
        keep=arguments.keep,
        prefix=f"hb2r-{name}-",
    )


def main() -> None:
    encoding_main(__doc__ or "", "overhead", overhead_heading, overhead_part)


if __name__ == "__main__":
    main()
