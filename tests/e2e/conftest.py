"""Fixtures shared by the end-to-end tests: agents started as `hb2r run` processes."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_run import Agent


@pytest.fixture
def agents() -> Iterator[Callable[[Path], Agent]]:
    """Start agents; stop every one at the end (SIGTERM, wait, then kill)."""
    started: list[Agent] = []

    def start(config: Path) -> Agent:
        agent = Agent(config)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        try:
            agent.stop(signal.SIGTERM, timeout=15.0)
        except subprocess.TimeoutExpired:
            agent.process.kill()
            agent.process.wait()
