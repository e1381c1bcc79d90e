"""The runner's fallback for hosts without `nice`/`ionice`: it lowers a started encoder itself."""

from __future__ import annotations

import subprocess

import psutil
import pytest

from agent.handbrake.runner import lower_priority


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
