"""The real sampler and priority setter on this machine: sane numbers, fast, and a nice encoder."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent.resources import Sampler, cpu_count, lower_priority


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "30"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def test_sample_of_this_machine_is_sane(tmp_path: Path) -> None:
    sampler = Sampler(tmp_path)

    sample = sampler.sample()

    assert 0.0 <= sample.cpu_percent <= 100.0
    assert 0.0 < sample.memory_percent <= 100.0
    assert 0 < sample.available_memory <= psutil.virtual_memory().total
    assert sample.archive_free > 0


def test_a_missing_archive_has_no_free_space(tmp_path: Path) -> None:
    assert Sampler(tmp_path / "not-mounted").sample().archive_free == 0


def test_sampling_never_blocks_the_event_loop(tmp_path: Path) -> None:
    started = time.perf_counter()
    sampler = Sampler(tmp_path)
    priming = time.perf_counter() - started
    durations = []
    for _ in range(5):
        started = time.perf_counter()
        sampler.sample()
        durations.append(time.perf_counter() - started)

    assert priming < 0.05
    assert min(durations) < 0.05


def test_cpu_count_is_the_number_of_logical_cores() -> None:
    assert cpu_count() == os.cpu_count()
    assert Sampler.cpu_count() == cpu_count()


def test_lower_priority_makes_an_encoder_nice_and_idle_on_io(sleeper: subprocess.Popen[bytes]) -> None:
    lower_priority(sleeper.pid, nice=13)

    process = psutil.Process(sleeper.pid)
    assert process.nice() == 13
    assert process.ionice().ioclass == psutil.IOPRIO_CLASS_IDLE


def test_lower_priority_falls_back_to_the_lowest_best_effort_io(
    sleeper: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_ionice = psutil.Process.ionice

    def refuse_idle(self: psutil.Process, ioclass: int | None = None, value: int | None = None) -> object:
        if ioclass == psutil.IOPRIO_CLASS_IDLE:
            raise psutil.AccessDenied(self.pid)
        return set_ionice(self, ioclass, value)

    monkeypatch.setattr(psutil.Process, "ionice", refuse_idle)

    lower_priority(sleeper.pid, nice=10)

    monkeypatch.undo()
    io = psutil.Process(sleeper.pid).ionice()
    assert (io.ioclass, io.value) == (psutil.IOPRIO_CLASS_BE, 7)
    assert psutil.Process(sleeper.pid).nice() == 10


def test_lower_priority_ignores_a_process_that_has_exited() -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()

    lower_priority(finished.pid, nice=10)  # an encode that ended before it was lowered is no error
