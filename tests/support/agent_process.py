"""`hb2r run` as a real process, as an operator's systemd would run it, and how tests stop it.

Stopping is one routine for every test and benchmark: SIGTERM (what systemd sends), wait up to a
deadline, then SIGKILL; an agent that needed the SIGKILL, or that exits non-zero when a test asked
for a clean exit, is a failure reported with the end of its log. The `agents` fixture stops every
agent it started that way at the end of the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.outcomes import read_log

REPO = Path(__file__).resolve().parents[2]
STOP_DEADLINE = 15.0


def agent_environment() -> dict[str, str]:
    """This process's environment without HB2R_* variables (a test's config names everything itself)."""
    return {key: value for key, value in os.environ.items() if not key.startswith("HB2R_")}


class AgentStopError(AssertionError):
    """The agent did not stop as asked."""


class AgentProcess:
    """One `hb2r run CONFIG` process; its output goes to `log_path` (agent.log beside the config)."""

    def __init__(
        self,
        config: Path,
        *,
        log_path: Path | None = None,
        environment: dict[str, str] | None = None,
        python: str = sys.executable,
        cwd: Path = REPO,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.root = config.parent
        self.log_path = log_path or config.parent / "agent.log"
        self.log_file = self.log_path.open("ab")
        self.started_wall = time.time()
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [python, "-m", "agent", "run", str(config)],
            cwd=cwd,
            env=environment if environment is not None else agent_environment(),
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=preexec,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_lines(self) -> list[dict[str, Any]]:
        """Return the JSON lines of the log so far (other lines, e.g. a traceback, are skipped)."""
        return read_log(self.log_path)

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Return the log's events called name (all of them without a name)."""
        return [line for line in self.log_lines() if name is None or line.get("event") == name]

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def stopped(self) -> str | None:
        """Return 'agent exited (CODE)' once the process has ended, else None."""
        code = self.process.poll()
        return None if code is None else f"agent exited ({code})"

    def stop(self, signum: int = signal.SIGTERM, *, deadline: float = STOP_DEADLINE) -> int:
        """Send signum (unless it has exited), wait up to deadline seconds and return the exit code.

        Raise AgentStopError, with the log's end, if it is still running then (it is killed first).
        """
        try:
            if self.process.poll() is None:
                self.process.send_signal(signum)
            try:
                return self.process.wait(timeout=deadline)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                name = signal.Signals(signum).name
                raise AgentStopError(
                    f"agent {self.pid} did not exit within {deadline:g} s of {name}; killed:\n{self.log_tail()}"
                ) from None
        finally:
            self.log_file.close()

    def stop_cleanly(self, *, deadline: float = STOP_DEADLINE) -> None:
        """Stop with SIGTERM; raise AgentStopError unless it exits 0 within deadline seconds."""
        code = self.stop(deadline=deadline)
        if code != 0:
            raise AgentStopError(f"agent {self.pid} exited {code} on SIGTERM:\n{self.log_tail()}")

    def close(self) -> None:
        """Kill it if it still runs (its encoders die with it) and close the log; for clean-up paths."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log_file.close()


StartAgent = Callable[..., AgentProcess]


@pytest.fixture
def agents() -> Iterator[StartAgent]:
    """Return agents(config, **AgentProcess options) -> a started AgentProcess; each still running at
    the end is stopped (SIGTERM, a deadline, then SIGKILL), and one that would not stop fails the test
    with its log."""
    started: list[AgentProcess] = []

    def start(config: Path, **options: Any) -> AgentProcess:
        started.append(AgentProcess(config, **options))
        return started[-1]

    yield start
    stubborn = []
    for agent in started:
        if agent.process.poll() is None:
            try:
                agent.stop()
            except AgentStopError as error:
                stubborn.append(str(error))
        agent.log_file.close()
    if stubborn:
        pytest.fail("\n\n".join(stubborn))
