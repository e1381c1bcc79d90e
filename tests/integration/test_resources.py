"""The real sampler on this machine: sane numbers, and fast enough for the event loop."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

from agent.resources import Sampler, cpu_count


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
