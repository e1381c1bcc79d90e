"""How fast is `hb2r plan` on a big library, against `find` reading the same facts?

Makes a tree of 100,000 small video files in nested folders, then times, in the same run
and on the same warm page cache:
- baseline: `find SRC -type f -printf '%p %s %T@\\n' | wc -l` (every path, size and mtime);
- hb2r:     `hb2r plan CONFIG` as a whole process (start-up and imports included), output
            to /dev/null, with no state database (every file is new: the worst case).
- context:  a bare Python `os.scandir` walk with one stat per file, as a whole process:
            the floor for any Python scanner, before config, planning and output.
Prints the medians, the ratio (target <= 3x) and hb2r's peak RSS (target <= 150 MB).

    .venv/bin/python bench/scan.py [--files 100000] [--runs 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def make_tree(source: Path, files: int) -> None:
    """Shows / seasons / episodes, ~100 files a folder, a few bytes each."""
    per_folder = 100
    made = 0
    show = 0
    while made < files:
        for season in range(10):
            folder = source / f"Show {show:04d}" / f"Season {season:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for episode in range(min(per_folder, files - made)):
                (folder / f"Show {show:04d} - S{season:02d}E{episode:03d}.mkv").write_bytes(b"not really a video\n")
                made += 1
            if made >= files:
                break
        show += 1


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
    parser.add_argument("--keep", type=Path, help="build the tree here and keep it")
    arguments = parser.parse_args()

    root = arguments.keep or Path(tempfile.mkdtemp(prefix="hb2r-bench-"))
    try:
        source = root / "source"
        if not source.exists():
            started = time.perf_counter()
            make_tree(source, arguments.files)
            print(f"made {arguments.files} files in {time.perf_counter() - started:.1f}s under {source}")
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
        print(f"ratio hb2r/find:        {hb2r_median / find_median:.2f}x  (target <= 3x)")
        print(f"ratio hb2r/bare walk:   {hb2r_median / walk_median:.2f}x")
        print(f"peak RSS hb2r plan:     {max(peaks) / 1e6:.0f} MB  (target <= 150 MB)")
        if os.path.exists(root / "state"):
            raise SystemExit("hb2r plan created the state folder; it must write nothing")
    finally:
        if arguments.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
