"""The real HandBrakeCLI, started, followed, paused and stopped by the runner.

Clips are made with ffmpeg (testsrc2 + sine, tests/support/clips.py). Only one fake HandBrakeCLI appears: a
shell script that ignores SIGTERM and hangs, a case the real binary cannot produce on
demand. Nothing sleeps to wait for work: every wait polls a condition with a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest

from agent.config.models import Preset
from agent.handbrake.command import encode_argv
from agent.handbrake.probe import media_duration
from agent.handbrake.progress import Progress
from agent.handbrake.runner import Encode, EncodeResult
from tests.support.clips import make_clip
from tests.support.waiting import wait_for_async

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "handbrake"
BINARY = "HandBrakeCLI"
QUICK = Preset(handbrake="Very Fast 480p30")
# Slow enough that a 20 s clip is still encoding when a test acts on it.
SLOW = Preset(handbrake="Fast 720p30", args=("--encoder-preset", "veryslow"))
T = TypeVar("T")


until = partial(wait_for_async, deadline=30.0, interval=0.02)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    folder = tmp_path_factory.mktemp("clips")
    yield {
        "short": make_clip(folder / "short.mkv", seconds=2),
        "long": make_clip(folder / "long.mkv", seconds=20, size="640x360"),
    }


def run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(scenario())


def gone(pid: int) -> bool:
    """A process that no longer runs: reaped, or a zombie waiting for an init that does not reap."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def thread_niceness(pid: int) -> set[int]:
    values = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # a thread that just ended
        values.add(int(fields[16]))
    return values


def hang_script(tmp_path: Path) -> Path:
    script = tmp_path / "HandBrakeCLI"
    script.write_text("#!/bin/sh\ntrap '' TERM\nsleep 1000\n")
    script.chmod(0o755)
    return script


def test_a_real_encode_reports_rising_progress_and_succeeds(clips: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "out.mkv"
    seen: list[Progress] = []

    async def scenario() -> EncodeResult:
        argv = encode_argv(binary=BINARY, preset=QUICK, source=clips["short"], output=output)
        encode = await Encode.start(argv, nice=10, on_progress=seen.append)
        return await encode.wait()

    result = run(scenario)

    assert result == EncodeResult(exit_code=0, work_done_error=0, stderr_tail=result.stderr_tail, cancelled=False)
    assert seen, "no progress was reported"
    assert [p.percent for p in seen] == sorted(p.percent for p in seen)
    assert seen[-1].percent >= 90
    assert output.stat().st_size > 0
    assert media_duration(output) == pytest.approx(2.0, abs=0.1)
    assert any("Encode done!" in line for line in result.stderr_tail)


def test_a_longer_encode_reports_progress_many_times(clips: dict[str, Path], tmp_path: Path) -> None:
    seen: list[Progress] = []

    async def scenario() -> EncodeResult:
        argv = encode_argv(binary=BINARY, preset=QUICK, source=clips["long"], output=tmp_path / "out.mkv")
        encode = await Encode.start(argv, nice=10, on_progress=seen.append)
        return await encode.wait()

    result = run(scenario)

    assert (result.exit_code, result.work_done_error) == (0, 0)
    assert len(seen) >= 3
    assert [p.percent for p in seen] == sorted(p.percent for p in seen)
    assert seen[0].percent < 90 <= seen[-1].percent


@pytest.mark.parametrize(
    ("preset", "looks_like"),
    [
        pytest.param(Preset(handbrake="Very Fast 480p30", container="mkv"), lambda head: b"matroska" in head, id="mkv"),
        pytest.param(
            Preset(handbrake="Very Fast 480p30", container="mp4"), lambda head: head[4:8] == b"ftyp", id="mp4"
        ),
        pytest.param(Preset(handbrake="VP9 MKV 480p30", container="webm"), lambda head: b"webm" in head, id="webm"),
        pytest.param(
            Preset(handbrake="hb2r Tiny", import_file=FIXTURES / "preset-tiny.json", args=("--quality", "35")),
            lambda head: b"matroska" in head,
            id="imported-preset-with-extra-args",
        ),
    ],
)
def test_the_built_argv_is_accepted_by_the_real_handbrake(
    clips: dict[str, Path], tmp_path: Path, preset: Preset, looks_like: Callable[[bytes], bool]
) -> None:
    output = tmp_path / f"out{preset.extension}"

    async def scenario() -> EncodeResult:
        argv = encode_argv(binary=BINARY, preset=preset, source=clips["short"], output=output)
        return await (await Encode.start(argv, nice=10, on_progress=lambda progress: None)).wait()

    result = run(scenario)

    assert (result.exit_code, result.work_done_error) == (0, 0), result.stderr_tail
    assert looks_like(output.read_bytes()[:64])


def test_an_unreadable_input_fails_and_says_why(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mkv"
    junk.write_bytes(os.urandom(200_000))
    output = tmp_path / "out.mkv"

    async def scenario() -> EncodeResult:
        argv = encode_argv(binary=BINARY, preset=QUICK, source=junk, output=output)
        return await (await Encode.start(argv, nice=10, on_progress=lambda progress: None)).wait()

    result = run(scenario)

    assert result.exit_code != 0
    assert result.work_done_error is None
    assert result.stderr_tail and len(result.stderr_tail) <= 50
    assert any("No title found" in line for line in result.stderr_tail)
    assert not result.cancelled
    assert not output.exists()


def test_a_missing_output_folder_fails(clips: dict[str, Path], tmp_path: Path) -> None:
    async def scenario() -> EncodeResult:
        argv = encode_argv(binary=BINARY, preset=QUICK, source=clips["short"], output=tmp_path / "nope" / "out.mkv")
        return await (await Encode.start(argv, nice=10, on_progress=lambda progress: None)).wait()

    result = run(scenario)

    assert result.exit_code != 0
    assert result.stderr_tail


def test_a_progress_callback_that_raises_does_not_stall_the_encode(clips: dict[str, Path], tmp_path: Path) -> None:
    calls: list[Progress] = []

    def broken(progress: Progress) -> None:
        calls.append(progress)
        raise RuntimeError("a bug in the caller")

    async def scenario() -> EncodeResult:
        argv = encode_argv(binary=BINARY, preset=QUICK, source=clips["short"], output=tmp_path / "out.mkv")
        return await (await Encode.start(argv, nice=10, on_progress=broken)).wait()

    result = run(scenario)

    assert (result.exit_code, result.work_done_error) == (0, 0)
    assert calls


def test_a_missing_binary_is_refused_before_anything_starts(tmp_path: Path) -> None:
    async def scenario() -> None:
        await Encode.start([str(tmp_path / "HandBrakeCLI"), "--json"], nice=10, on_progress=lambda progress: None)

    with pytest.raises(FileNotFoundError):
        run(scenario)


async def encode_under_way(source: Path, output: Path, *, preset: Preset, nice: int, seen: list[Progress]) -> Encode:
    """Start the real HandBrakeCLI on source at nice, its progress into seen; return once it reports some."""
    argv = encode_argv(binary=BINARY, preset=preset, source=source, output=output)
    encode = await Encode.start(argv, nice=nice, on_progress=seen.append)
    await until(lambda: bool(seen), what="the first progress report")
    return encode


def test_the_encode_runs_at_the_requested_niceness_in_every_thread_and_idle_io(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    seen: list[Progress] = []
    observed: dict[str, object] = {}

    async def scenario() -> EncodeResult:
        encode = await encode_under_way(clips["long"], tmp_path / "out.mkv", preset=SLOW, nice=7, seen=seen)
        process = psutil.Process(encode.pid)
        observed.update(
            name=process.name(), nice=process.nice(), io=process.ionice().ioclass, threads=thread_niceness(encode.pid)
        )
        await encode.cancel(grace=5)
        return await encode.wait()

    result = run(scenario)

    assert observed["name"] == "HandBrakeCLI"
    assert observed["nice"] == 7
    assert observed["threads"] == {7}
    assert observed["io"] == psutil.IOPRIO_CLASS_IDLE
    assert result.cancelled


def test_cancel_stops_a_running_encode_within_the_grace(clips: dict[str, Path], tmp_path: Path) -> None:
    seen: list[Progress] = []
    timing: dict[str, float] = {}

    async def scenario() -> tuple[int, EncodeResult]:
        encode = await encode_under_way(clips["long"], tmp_path / "out.mkv", preset=SLOW, nice=10, seen=seen)
        started = time.monotonic()
        await encode.cancel(grace=5.0)
        timing["cancel"] = time.monotonic() - started
        return encode.pid, await encode.wait()

    pid, result = run(scenario)

    assert timing["cancel"] < 5.0 + 2.0
    assert result.cancelled
    assert result.exit_code != 0
    assert seen[-1].percent < 90  # it really was stopped midway
    assert not psutil.pid_exists(pid)


def test_a_hung_encoder_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    """A fake HandBrakeCLI (a shell script that ignores SIGTERM and sleeps) stands in for a
    hung encoder: the real one cannot be made to hang on demand."""
    script = hang_script(tmp_path)
    timing: dict[str, float] = {}

    async def scenario() -> tuple[list[int], EncodeResult]:
        encode = await Encode.start([str(script)], nice=10, on_progress=lambda progress: None)
        await until(lambda: bool(psutil.Process(encode.pid).children()), what="the script to start sleeping")
        pids = [encode.pid] + [child.pid for child in psutil.Process(encode.pid).children(recursive=True)]
        started = time.monotonic()
        await encode.cancel(grace=1.0)
        timing["cancel"] = time.monotonic() - started
        return pids, await encode.wait()

    pids, result = run(scenario)

    assert 1.0 <= timing["cancel"] < 1.0 + 2.0
    assert result.cancelled
    assert result.exit_code == -signal.SIGKILL
    assert all(gone(pid) for pid in pids)


def test_cancelling_the_task_that_awaits_an_encode_kills_its_process_group(tmp_path: Path) -> None:
    """A fake HandBrakeCLI that ignores SIGTERM and hangs: only a kill of the whole group ends it."""
    script = hang_script(tmp_path)

    async def scenario() -> list[int]:
        encode = await Encode.start([str(script)], nice=10, on_progress=lambda progress: None)
        await until(lambda: bool(psutil.Process(encode.pid).children()), what="the script to start sleeping")
        pids = [encode.pid] + [child.pid for child in psutil.Process(encode.pid).children(recursive=True)]
        waiter = asyncio.create_task(encode.wait())
        await asyncio.sleep(0)  # let the waiter start awaiting
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        await until(lambda: all(gone(pid) for pid in pids), what="the process group to die", deadline=5)
        return pids

    pids = run(scenario)

    assert all(gone(pid) for pid in pids)


def test_suspend_stops_the_encode_and_resume_lets_it_finish(clips: dict[str, Path], tmp_path: Path) -> None:
    seen: list[Progress] = []
    observed: dict[str, object] = {}

    async def scenario() -> EncodeResult:
        encode = await encode_under_way(clips["long"], tmp_path / "out.mkv", preset=QUICK, nice=10, seen=seen)
        process = psutil.Process(encode.pid)

        encode.suspend()
        await until(lambda: process.status() == psutil.STATUS_STOPPED, what="the process to stop", deadline=5)
        observed["status"], observed["suspended"] = process.status(), encode.suspended
        cpu = [-1.0]

        def cpu_stands_still() -> bool:
            previous, cpu[0] = cpu[0], sum(process.cpu_times()[:2])
            return previous == cpu[0]

        await until(cpu_stands_still, what="a stopped encode to use no CPU", deadline=5)
        reports_while_stopped = len(seen)

        encode.resume()
        result = await encode.wait()
        observed["reports_after_resume"] = len(seen) - reports_while_stopped
        return result

    result = run(scenario)

    assert observed["status"] == psutil.STATUS_STOPPED
    assert observed["suspended"] is True
    assert (result.exit_code, result.work_done_error, result.cancelled) == (0, 0, False)
    assert observed["reports_after_resume"] != 0  # it went on after resume()
    assert seen[-1].percent >= 90


_AGENT = """
import asyncio, sys
from agent.handbrake.runner import Encode

async def main():
    reported = asyncio.Event()
    encode = await Encode.start(sys.argv[1:], nice=10, on_progress=lambda progress: reported.set())
    await reported.wait()
    encode.suspend()  # a stopped encode cannot die of a broken pipe; only the kernel's death signal ends it
    print(encode.pid, flush=True)
    await encode.wait()

asyncio.run(main())
"""


def test_an_encode_even_a_suspended_one_dies_with_an_agent_killed_by_sigkill(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    argv = encode_argv(binary=BINARY, preset=SLOW, source=clips["long"], output=tmp_path / "out.mkv")
    agent = subprocess.Popen([sys.executable, "-c", _AGENT, *argv], cwd=REPO, stdout=subprocess.PIPE, text=True)
    encoder_pid = None
    try:
        assert agent.stdout is not None
        encoder_pid = int(agent.stdout.readline())
        asyncio.run(
            until(lambda: psutil.Process(encoder_pid).status() == psutil.STATUS_STOPPED, what="the encode to stop")
        )

        agent.kill()
        agent.wait(timeout=10)

        asyncio.run(until(lambda: gone(encoder_pid), what="the orphaned encoder to die", deadline=10))
    finally:
        if encoder_pid is not None and not gone(encoder_pid):
            os.killpg(encoder_pid, signal.SIGKILL)
            os.killpg(encoder_pid, signal.SIGCONT)
