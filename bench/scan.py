"""How fast is `hb2r plan` on a big library, against `find` reading the same facts?

Makes a tree of 100,000 small video files in nested folders, then times, in the same run
and on the same warm page cache:
- baseline: `find SRC -type f -printf '%p %s %T@\\n' | wc -l` (every path, size and mtime);
- hb2r:     `hb2r plan CONFIG` as a whole process (start-up and imports included), output
            to /dev/null, with no state database (every file is new: the worst case).
- context:  a bare Python `os.scandir` walk with one stat per file, as a whole process:
            the floor for any Python scanner, before config, planning and output.
Prints the medians, the ratio (target <= 2x) and hb2r's peak RSS (target <= 300 MB).

Part `pickup` (bench_pickup): a running `hb2r run` on the same tree, every file already
encoded (ledger rows and outputs written beforehand), `scan.interval: 1h`, `stable_after` 2 s,
the gate closed by a time window so nothing encodes: one file is added, and the time from its
close to its job being queued is measured, ten times; prints the median against the target
(stable_after + 2 s).

Part `idle` (bench_idle): a running `hb2r run` on the same tree, every file already encoded,
`scan.interval: 3s` (--idle-interval; full passes every 6 h, the first after start excepted), nothing changing:
the median pass (`hb2r_scan_duration_seconds`, the first, full pass left out) against `find`
on the same tree, the agent's CPU over the window (share of one core) and its RSS (now, peak).

    .venv/bin/python bench/scan.py [--files 100000] [--runs 7] [--keep DIR] [--parts plan,pickup,idle]
                                   [--idle-seconds 30] [--idle-interval 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench_support import make_tree

from tests.support.ports import free_port

HB2R = [sys.executable, "-m", "agent"]
BARE_WALK = """
import os, sys
folders, count = [sys.argv[1]], 0
while folders:
    with os.scandir(folders.pop()) as entries:
        for entry in entries:
            if entry.is_dir():
                folders.append(entry.path)
            else:
                entry.stat()
                count += 1
print(count)
"""


def stop_agent(agent: subprocess.Popen[bytes]) -> None:
    """Stop a benchmark's agent: SIGTERM (a clean stop), SIGKILL if it is still there after 30 s."""
    agent.terminate()
    try:
        agent.wait(timeout=30)
    except subprocess.TimeoutExpired:
        agent.kill()
        agent.wait()


def write_config(root: Path) -> Path:
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        "  - {name: tv, source: source, output: TV, preset: tv, stable_after: 0s}\n"
        "presets:\n"
        "  tv: {handbrake: 'Fast 1080p30'}\n"
    )
    (root / "archive").mkdir(exist_ok=True)
    return config


def time_shell(command: str) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-c", command], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_hb2r(config: Path) -> tuple[float, int]:
    """Return wall seconds and peak RSS in bytes of one `hb2r plan` process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [*HB2R, "plan", str(config)], stdout=subprocess.DEVNULL, cwd=Path(__file__).parent.parent
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 2):
        raise SystemExit(f"hb2r plan failed with exit {process.returncode}")
    return elapsed, usage.ru_maxrss * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--keep", type=Path, help="build the tree here and keep it, and what parts pickup and idle record (DIR/encoded)"
    )
    parser.add_argument("--parts", default="plan,pickup", help="comma-separated parts to run: plan, pickup, idle")
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="how long part idle watches the agent")
    parser.add_argument("--idle-interval", type=float, default=3.0, help="scan.interval of part idle (60: the default)")
    arguments = parser.parse_args()
    parts = set(arguments.parts.split(","))

    root = arguments.keep or Path(tempfile.mkdtemp(prefix="hb2r-bench-"))
    try:
        source = root / "source"
        if not source.exists():
            started = time.perf_counter()
            make_tree(source, arguments.files)
            print(f"made {arguments.files} files in {time.perf_counter() - started:.1f}s under {source}")
        if "pickup" in parts:
            bench_pickup(root, source, tries=10, keep=arguments.keep is not None)
        if "idle" in parts:
            bench_idle(
                root, source, seconds=arguments.idle_seconds, interval=arguments.idle_interval,
                keep=arguments.keep is not None,
            )  # fmt: skip
        if "plan" not in parts:
            return
        config = write_config(root)
        find = f"find {source} -type f -printf '%p %s %T@\\n' | wc -l"
        time_shell(find)  # warm the page cache for both
        time_hb2r(config)
        walk = f"{sys.executable} -c '{BARE_WALK}' {source}"
        find_times, walk_times, hb2r_times, peaks = [], [], [], []
        for _ in range(arguments.runs):  # interleaved, so drift in machine load hits all alike
            find_times.append(time_shell(find))
            walk_times.append(time_shell(walk))
            elapsed, peak = time_hb2r(config)
            hb2r_times.append(elapsed)
            peaks.append(peak)
        find_median = statistics.median(find_times)
        walk_median = statistics.median(walk_times)
        hb2r_median = statistics.median(hb2r_times)
        print(f"files:                  {arguments.files}")
        print(f"find (median of {arguments.runs}):     {find_median:.3f}s")
        print(f"bare Python walk:       {walk_median:.3f}s  ({walk_median / find_median:.2f}x find)")
        print(f"hb2r plan:              {hb2r_median:.3f}s")
        print(f"ratio hb2r/find:        {hb2r_median / find_median:.2f}x  (target <= 2x)")
        print(f"ratio hb2r/bare walk:   {hb2r_median / walk_median:.2f}x")
        print(f"peak RSS hb2r plan:     {max(peaks) / 1e6:.0f} MB  (target <= 300 MB)")
        if os.path.exists(root / "state"):
            raise SystemExit("hb2r plan created the state folder; it must write nothing")
    finally:
        if arguments.keep is None:
            shutil.rmtree(root, ignore_errors=True)


PICKUP_STABLE_AFTER = 2.0


def bench_pickup(root: Path, source: Path, *, tries: int, keep: bool = False) -> None:
    """One file added to the library of a running agent: seconds from its close to its job
    being queued, median of `tries`, against stable_after + 2 s. Leaves `source` as it was."""
    work, reuse = _encoded_work(root, "pickup", keep=keep)
    port = free_port()
    closed_hour = (datetime.now(UTC).astimezone().hour + 12) % 24  # the gate holds every job: nothing encodes
    config = work / "pickup.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        f"  - {{name: tv, source: {source}, output: TV, preset: tv, stable_after: {PICKUP_STABLE_AFTER:g}s}}\n"
        "presets:\n"
        "  tv: {handbrake: 'Fast 1080p30'}\n"
        "scan: {interval: 1h}\n"
        f"limits: {{windows: ['{closed_hour:02d}:00-{closed_hour:02d}:01']}}\n"
        "auth: {jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4}\n"
        f"server: {{listen: '127.0.0.1:{port}'}}\n"
    )
    _record_unless_reused(config, work, reuse=reuse, keep=keep, part="pickup")
    log = (work / "agent.log").open("wb")
    agent = subprocess.Popen(
        [*HB2R, "run", str(config)], cwd=Path(__file__).parent.parent, stdout=log, stderr=subprocess.STDOUT
    )
    added: list[Path] = []
    try:
        _until(lambda: _first_pass_done(port), what="the agent's first pass", deadline=600.0, agent=agent)
        folders = sorted({path.parent for path in source.glob("*/*/*.mkv")})
        latencies: list[float] = []
        pass_seconds: list[float] = []  # how long the pass that queued it took: two passes bound the wait
        for attempt in range(tries):
            folder = folders[(attempt * 7919) % len(folders)]
            target = folder / f"added {attempt:02d}.mkv"
            target.write_bytes(b"a new episode, not really a video\n")
            closed = time.monotonic()
            added.append(target)
            rel_path = str(target.relative_to(source))
            _until(
                lambda rel_path=rel_path: _queued(work / "state" / "hb2r.db", rel_path),
                what="the job queued",
                deadline=60.0,
                agent=agent,
            )
            latencies.append(time.monotonic() - closed)
            pass_seconds.append(_scan_seconds(port))
        median = statistics.median(latencies)
        target_seconds = PICKUP_STABLE_AFTER + 2.0
        print(
            f"pickup: one file added, queued after (median of {tries}): {median:.2f}s  "
            f"(target <= stable_after + 2 s = {target_seconds:g}s; "
            f"min {min(latencies):.2f}s, max {max(latencies):.2f}s)"
        )
        print(f"pickup: beyond stable_after: {median - PICKUP_STABLE_AFTER:.2f}s")
        print(f"pickup: one pass of the running agent (median): {statistics.median(pass_seconds):.2f}s")
    finally:
        stop_agent(agent)
        log.close()
        for path in added:
            path.unlink(missing_ok=True)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)




def bench_idle(root: Path, source: Path, *, seconds: float, interval: float = 3.0, keep: bool = False) -> None:
    """A running agent over an unchanged, fully encoded library: its passes against `find`, its
    CPU while it only passes, and its memory."""
    work, reuse = _encoded_work(root, "idle", keep=keep)
    port = free_port()
    config = work / "idle.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries:\n"
        f"  - {{name: tv, source: {source}, output: TV, preset: tv, stable_after: 2s}}\n"
        "presets:\n"
        "  tv: {handbrake: 'Fast 1080p30'}\n"
        f"scan: {{interval: {interval:g}s}}\n"
        "auth: {jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4}\n"
        f"server: {{listen: '127.0.0.1:{port}'}}\n"
    )
    _record_unless_reused(config, work, reuse=reuse, keep=keep, part="idle")
    find = f"find {source} -type f -printf '%p %s %T@\\n' | wc -l"
    time_shell(find)
    find_median = statistics.median(time_shell(find) for _ in range(5))
    log = (work / "agent.log").open("wb")
    agent = subprocess.Popen(
        [*HB2R, "run", str(config)], cwd=Path(__file__).parent.parent, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        _until(lambda: _first_pass_done(port), what="the agent's first pass", deadline=600.0, agent=agent)
        first = _scan_seconds(port)
        cpu_before, at_before = _cpu_seconds(agent.pid), time.monotonic()
        passes: list[float] = []
        last = first
        # Each pass's time is read from /metrics, a few times a pass: often enough to see each one,
        # seldom enough that serving /metrics (a request costs the agent CPU) is not what is measured.
        while time.monotonic() - at_before < seconds:
            value = _scan_seconds(port)
            if value != last:
                passes.append(value)
                last = value
            time.sleep(max(0.1, interval / 4))
        cpu = (_cpu_seconds(agent.pid) - cpu_before) / (time.monotonic() - at_before)
        rss, peak = _rss(agent.pid)
        median = statistics.median(passes) if passes else float("nan")
        print(f"idle: find (median of 5): {find_median:.3f}s; the first, full pass: {first:.3f}s")
        print(
            f"idle: a pass over the unchanged library (median of {len(passes)}): {median:.3f}s  "
            f"({median / find_median:.2f}x find)"
        )
        print(f"idle: agent CPU at a {interval:g}s interval: {cpu * 100:.1f}% of one core")
        print(f"idle: agent RSS: {rss / 1e6:.0f} MB now, {peak / 1e6:.0f} MB peak")
    finally:
        stop_agent(agent)
        log.close()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def _encoded_work(root: Path, part: str, *, keep: bool) -> tuple[Path, bool]:
    """Return the folder a part runs its agent in, and whether it holds a state recorded earlier:
    with --keep, one folder ("encoded") shared by the parts and by later runs on the same tree,
    left as the last agent left it; else a new folder of the part's own."""
    work = root / ("encoded" if keep else part)
    reuse = keep and (work / "recorded").exists()
    if not reuse:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
    return work, reuse


def _record_unless_reused(config: Path, work: Path, *, reuse: bool, keep: bool, part: str) -> None:
    if reuse:
        print(f"{part}: the state and outputs recorded by an earlier run (--keep), as its agent left them")
        return
    started = time.perf_counter()
    count = _record_everything_encoded(config)
    print(f"{part}: recorded {count} files as encoded in {time.perf_counter() - started:.1f}s")
    if keep:
        (work / "recorded").touch()


def _cpu_seconds(pid: int) -> float:
    """Return the CPU seconds (user + system) the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss(pid: int) -> tuple[int, int]:
    """Return the process's resident memory now and at its peak, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found["VmRSS"], found["VmHWM"]


def _record_everything_encoded(config_path: Path) -> int:
    """Write the ledger rows and outputs `hb2r run` would leave after encoding every file."""
    sys.path.insert(0, str(Path(__file__).parent.parent))
    from agent.config import load_config
    from agent.domain import LedgerEntry
    from agent.handbrake.probe import handbrake_version
    from agent.identity import output_path, preset_identity
    from agent.scan import fingerprint
    from agent.store import ledger
    from agent.store.db import open_database

    config = load_config(config_path).config
    (config.paths.archive).mkdir(parents=True, exist_ok=True)
    library = config.libraries[0]
    preset = config.preset_for(library)
    preset_hash = preset_identity(
        preset, import_file_content=None, handbrake_version=handbrake_version(config.handbrake.binary)
    )
    database = open_database(config.paths.state_dir)
    count = 0
    made: set[Path] = set()
    try:
        with database.transaction():
            for folder, _, names in os.walk(library.source):
                for name in names:
                    path = Path(folder) / name
                    info = path.stat()
                    rel_path = path.relative_to(library.source).as_posix()
                    output = output_path(library, preset, rel_path)
                    entry = LedgerEntry(
                        library.name,
                        rel_path,
                        fingerprint(path, size=info.st_size),
                        info.st_size,
                        info.st_mtime_ns,
                        preset_hash,
                        output,
                    )
                    ledger.record(database, entry, encoded_at=datetime.now(UTC).isoformat())
                    target = config.paths.archive / output
                    if target.parent not in made:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        made.add(target.parent)
                    target.write_bytes(b"encoded")
                    count += 1
    finally:
        database.close()
    return count


def _scan_seconds(port: int) -> float:
    """Return how long the agent's last pass took (0 before the first, or if it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith("hb2r_scan_duration_seconds "):
            return float(line.split()[1])
    return 0.0


def _first_pass_done(port: int) -> bool:
    return _scan_seconds(port) > 0


def _queued(database: Path, rel_path: str) -> bool:
    if not database.exists():
        return False
    with sqlite3.connect(f"{database.as_uri()}?mode=ro", uri=True, timeout=5) as connection:
        return connection.execute("SELECT 1 FROM jobs WHERE rel_path = ?", (rel_path,)).fetchone() is not None


def _until(condition: Callable[[], bool], *, what: str, deadline: float, agent: subprocess.Popen[bytes]) -> None:
    end = time.monotonic() + deadline
    while not condition():
        if agent.poll() is not None:
            raise SystemExit(f"the agent exited ({agent.returncode}) while waiting for {what}")
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


if __name__ == "__main__":
    main()
