"""What the benchmarks share besides tests/support: a failure to run, a library of small files, and the
watcher that says when other work on the machine made the figures noisy.

Benchmarks run as `python bench/NAME.py`, so this folder is first on sys.path and `import bench_support`
finds this module; `REPO` is put on sys.path here for `agent` and `tests.support`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

HANDBRAKE = "HandBrakeCLI"


class BenchError(Exception):
    """Something the benchmark needs failed to run."""


def make_tree(source: Path, files: int) -> None:
    """Make `files` files of 19 bytes named like episodes under source: Show NNNN / Season NN / ..., 100 a folder."""
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


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def listed(values: list[float]) -> str:
    return "[" + ", ".join(f"{value:.2f}" for value in values) + "]"


Step = tuple[str | None, str, Callable[[Path], None]]


def run_steps(
    steps: list[Step], *, keep: Path | None, prefix: str, tools: tuple[str, ...] = ("ffmpeg", HANDBRAKE)
) -> None:
    """Run each step (part, heading, run(work)) in one work folder (keep, else a temporary one removed
    at the end): print its heading, run it, then say whether other processes made its figures noisy
    (steps without a part only run). Exit 1, saying why, if something failed to run."""
    for tool in tools:
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (make system-packages)")
    work = keep or Path(tempfile.mkdtemp(prefix=prefix))
    interference = Interference()
    interference.start()
    try:
        for part, heading, run in steps:
            if heading:
                print(heading, flush=True)
            run(work)
            if part:
                interference.report(part)
    except (BenchError, AssertionError, subprocess.CalledProcessError, OSError) as error:
        print(f"FAILED: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    finally:
        interference.finish()
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
