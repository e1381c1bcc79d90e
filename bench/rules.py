"""What do media-aware rules cost a pass, and what do they save on a mixed library?

Part `pass` (10,000 unchanged files, every one already probed): a tree of small distinct files
(not video: nothing is encoded, each stays a queued transcode, so every pass plans and rules
every file again; the folders with work are planned each pass). Three agents, each on its own
state database, run the real engine pass (`agent.engine.reconcile`, in a process of its own)
until every file is queued:
- before:  the code before rules existed (`git archive` of --before, default the first parent
           of the merge that brought rules), no ffprobe at all: today's pass, the baseline;
- plain:   this code, no `rules:` (the default `hdr: copy` still reads each file's facts);
- rules:   this code with "leave HEVC alone" (and a skip rule that matches nothing).
Then --runs rounds, the three in turn (so a shared machine's load weighs on all alike), each a
new process: a full pass (untimed), then 2 timed passes.
The facts of the last two are recorded beforehand for every file's fingerprint (the facts of a
real H.264 clip, probed once), as a first pass would have; ffprobe on PATH is a wrapper that
counts its runs. Prints each median pass, the ratios, and how many ffprobe ran (target: 0).

Part `sync` (a mixed library of --clips real clips of 2 s, half already HEVC, made with ffmpeg):
the real pass and dispatcher (HandBrakeCLI, `Very Fast 480p30`, max_jobs 2) until in sync,
without rules and with "leave HEVC alone"; prints the wall time and the archive's size both
ways, and the ratios.

    .venv/bin/python bench/rules.py [--files 10000] [--runs 7] [--clips 8] [--parts pass,sync]
                                    [--before REV]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Run as a script, this folder is first on sys.path, and its queue.py would hide the standard
# library's `queue` from the agent's modules imported here (part sync runs the agent in-process).
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
RULES_MERGE = "6827cf8"  # "Merge branch 'fix/rules'": its first parent is the code before rules
LEAVE_HEVC_ALONE = (
    "rules:\n"
    "  - {name: already efficient, when: {codec: [hevc, av1]}, action: copy}\n"
    "  - {name: tiny, when: {height_at_most: 40}, action: skip}\n"
)
COUNTING_FFPROBE = """#!/bin/sh
echo run >> "$HB2R_BENCH_FFPROBE_RUNS"
exec {real} "$@"
"""
# Runs in a process of its own, with the code under test first on sys.path: every file queued,
# then `runs` timed passes; prints JSON.
PASSES = """
import asyncio, io, json, os, sys, time
from pathlib import Path
from agent import logs
from agent.config import load_config
from agent.engine import AgentState, reconcile
from agent.observe import preset_hashes
from agent.store.db import open_database
from agent.store.sqlite import SqliteStore

config = load_config(Path(sys.argv[1])).config
runs = int(sys.argv[2])
logs.configure(stream=io.StringIO(), json=True)
log = logs.get_logger("bench")
connection = open_database(config.paths.state_dir)
state = AgentState(config=config, store=SqliteStore(connection), preset_hashes=preset_hashes(config, warn=print))
counted = Path(os.environ["HB2R_BENCH_FFPROBE_RUNS"])

def ffprobe_runs():
    return len(counted.read_text().splitlines()) if counted.exists() else 0

def queued():
    return connection.execute("SELECT count(*) FROM jobs WHERE state = 'queued'").fetchone()[0]

async def main():
    at_start = ffprobe_runs()
    warm, before = 0, -1
    while queued() != before:
        before = queued()
        await reconcile(state, log=log)
        warm += 1
    probes = ffprobe_runs() - at_start
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        await reconcile(state, log=log)
        seconds.append(time.perf_counter() - started)
    print(json.dumps({"warm_passes": warm, "queued": queued(), "seconds": seconds,
                      "ffprobe_warm": probes, "ffprobe_timed": ffprobe_runs() - at_start - probes}))

asyncio.run(main())
"""


def make_files(source: Path, files: int) -> None:
    """100 folders of ~100 small files, each content distinct."""
    for index in range(files):
        folder = source / f"Show {index // 100:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"Episode {index % 100:03d}.mkv").write_bytes(f"not really a video {index}\n".encode())


def write_config(root: Path, *, source: Path, extra: str = "", limits: str = "") -> Path:
    (root / "archive").mkdir(parents=True, exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        f"paths: {{archive: '{root / 'archive'}', state_dir: '{root / 'state'}'}}\n"
        f"libraries: [{{name: tv, source: '{source}', output: TV, preset: tv, stable_after: 0s}}]\n"
        "presets: {tv: {handbrake: 'Very Fast 480p30'}}\n" + limits + extra
    )
    return config


def seed_facts(config_path: Path, source: Path, clip: Path) -> None:
    """Record, for every file's fingerprint, the facts of a real H.264 clip: what a first pass kept."""
    from agent.config import load_config
    from agent.handbrake.probe import probe_facts
    from agent.scan import fingerprint
    from agent.store import media_facts
    from agent.store.db import open_database

    facts = probe_facts(clip)
    connection = open_database(load_config(config_path).config.paths.state_dir)
    now = datetime.now(UTC)
    with connection.transaction():
        for path in source.rglob("*.mkv"):
            media_facts.record(
                connection, fingerprint(path, size=path.stat().st_size), facts=facts, error=None, now=now
            )
    connection.close()


def make_clip(path: Path, *, hevc: bool, index: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = (
        ["-c:v", "libx265", "-preset", "ultrafast", "-crf", "30", "-x265-params", "log-level=error"]
        if hevc
        else ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "18"]
    )
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size=640x360:rate=25,hue=h={index * 40}", "-t", "2", *codec, str(path)],
        check=True, timeout=300,
    )  # fmt: skip
    return path


def run_passes(code: Path, config: Path, *, runs: int, environment: dict[str, str]) -> dict[str, object]:
    finished = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(code)!r})\n" + PASSES, str(config), str(runs)],
        cwd=code, env=environment, capture_output=True, text=True, check=False, timeout=3600,
    )  # fmt: skip
    if finished.returncode != 0:
        raise SystemExit(f"passes under {code} failed:\n{finished.stderr[-3000:]}")
    result: dict[str, object] = json.loads(finished.stdout.strip().splitlines()[-1])
    return result


def bench_pass(root: Path, *, files: int, runs: int, before_rev: str) -> None:
    source = root / "source"
    make_files(source, files)
    clip = make_clip(root / "clips" / "h264.mkv", hevc=False, index=0)
    before_code = root / "before"
    before_code.mkdir()
    archived = subprocess.run(["git", "archive", before_rev, "agent"], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(before_code)], input=archived.stdout, check=True)
    wrapper = root / "bin"
    wrapper.mkdir()
    real = shutil.which("ffprobe")
    if real is None:
        raise SystemExit("ffprobe is not installed")
    (wrapper / "ffprobe").write_text(COUNTING_FFPROBE.format(real=real))
    (wrapper / "ffprobe").chmod(0o755)
    variants = (("before", before_code, ""), ("plain", REPO, ""), ("rules", REPO, LEAVE_HEVC_ALONE))
    configs: dict[str, tuple[Path, Path, dict[str, str]]] = {}
    warmed: dict[str, dict[str, object]] = {}
    for name, code, extra in variants:  # every file queued (and, but for "before", its facts kept)
        config = write_config(root / name, source=source, extra=extra)
        if name != "before":
            seed_facts(config, source, clip)
        environment = {
            **os.environ,
            "PATH": f"{wrapper}:{os.environ['PATH']}",
            "HB2R_BENCH_FFPROBE_RUNS": str(root / name / "ffprobe-runs"),
        }
        configs[name] = (code, config, environment)
        warmed[name] = run_passes(code, config, runs=0, environment=environment)
    # Rounds, each variant in turn, so that the load of a shared machine weighs on all three alike;
    # each round is a new process: its first pass is a full one (untimed), then 2 timed passes.
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    probes = dict.fromkeys(configs, 0)
    for _ in range(runs):
        for name, (code, config, environment) in configs.items():
            result = run_passes(code, config, runs=2, environment=environment)
            seconds[name] += result["seconds"]  # type: ignore[arg-type]
            probes[name] += int(result["ffprobe_warm"]) + int(result["ffprobe_timed"])  # type: ignore[call-overload]
    medians = {name: statistics.median(timed) for name, timed in seconds.items()}
    print(f"part pass: {files} unchanged files, all already probed; {runs} rounds of 2 timed passes (median)")
    for name, result in warmed.items():
        print(
            f"  {name:<7} {medians[name]:.3f} s a pass  ({result['queued']} queued after {result['warm_passes']} "
            f"passes, ffprobe runs {result['ffprobe_warm']}; after that, ffprobe runs: {probes[name]})"
        )
    print(f"  rules / before = {medians['rules'] / medians['before']:.2f}x   "
          f"rules / plain = {medians['rules'] / medians['plain']:.2f}x")  # fmt: skip


def bench_sync(root: Path, *, clips: int) -> None:
    source = root / "mixed"
    for index in range(clips):
        hevc = index % 2 == 1
        make_clip(source / f"clip{index:02d}-{'hevc' if hevc else 'h264'}.mkv", hevc=hevc, index=index)
    source_bytes = sum(path.stat().st_size for path in source.iterdir())
    print(f"part sync: {clips} clips of 2 s 640x360, half HEVC, {source_bytes / 1e6:.2f} MB of sources")
    limits = "limits: {cpu_percent: 100, memory_percent: 100, min_free_memory: 0B, min_free_disk: 0B, max_jobs: 2}\n"
    found: dict[str, tuple[float, int]] = {}
    for name, extra in (("without rules", ""), ("with rules", LEAVE_HEVC_ALONE)):
        config = write_config(root / name.replace(" ", "-"), source=source, extra=extra, limits=limits)
        started = time.perf_counter()
        asyncio.run(_until_in_sync(config))
        seconds = time.perf_counter() - started
        archive = root / name.replace(" ", "-") / "archive"
        size = sum(path.stat().st_size for path in archive.rglob("*") if path.is_file())
        found[name] = (seconds, size)
        print(f"  {name:<13} in sync after {seconds:6.1f} s; archive {size / 1e6:.2f} MB")
    (slow, big), (fast, small) = found["without rules"], found["with rules"]
    print(f"  with / without: wall time {fast / slow:.2f}x, archive size {small / big:.2f}x")


async def _until_in_sync(config_path: Path) -> None:
    """Run the real pass and dispatcher until a pass finds nothing to do and no job is left.
    (The agent's modules are imported here, after sys.path is set right above.)"""

    from agent import logs
    from agent.api.context import assemble
    from agent.config import load_config
    from agent.engine import AgentState, reconcile
    from agent.observe import preset_hashes
    from agent.resources import Sampler
    from agent.store.db import open_database
    from agent.store.sqlite import SqliteStore

    config = load_config(config_path).config
    logs.configure(stream=io.StringIO(), json=True)
    log = logs.get_logger("bench")
    connection = open_database(config.paths.state_dir)
    state = AgentState(config=config, store=SqliteStore(connection), preset_hashes=preset_hashes(config, warn=print))
    context = assemble(
        state, sampler=Sampler(config.paths.archive), secret=b"s" * 32, request_scan=lambda: None, log=log,
        now=datetime.now(UTC),
    )  # fmt: skip
    dispatcher = context.dispatcher

    def waiting() -> int:
        row = connection.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'failed')").fetchone()
        return int(row[0])

    try:
        while True:
            await reconcile(state, log=log)
            if not waiting() and not dispatcher.running and state.last_pass and not state.last_pass.pending:
                return
            while waiting() or dispatcher.running:
                dispatcher.tick()
                await asyncio.sleep(0.1)
    finally:
        context.checker.close()
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--parts", default="pass,sync", help="comma-separated parts to run: pass, sync")
    parser.add_argument("--before", default=f"{RULES_MERGE}^1", help="the code before rules, for part pass")
    arguments = parser.parse_args()
    parts = set(arguments.parts.split(","))
    root = Path(tempfile.mkdtemp(prefix="hb2r-bench-rules-"))
    try:
        if "pass" in parts:
            bench_pass(root, files=arguments.files, runs=arguments.runs, before_rev=arguments.before)
        if "sync" in parts:
            bench_sync(root, clips=arguments.clips)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
