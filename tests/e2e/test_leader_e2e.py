"""One planner at a time with a real `hb2r run` on PostgreSQL, SIGSTOPped past its lease.

The other host is this test, holding the lease through its own connection (a second agent on
the same database is still refused at start until job claims land: see agent.store.postgres_store).
The agent's lease is 3 s; every wait polls with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.store.database_store import DatabaseStore
from tests.support.agent_process import AgentProcess, StartAgent
from tests.support.clips import make_clip
from tests.support.configs import write_config
from tests.support.ports import free_port
from tests.support.waiting import wait_for

LEASE = timedelta(seconds=3)


@pytest.fixture
def rival(direct_postgres_store: DatabaseStore) -> DatabaseStore:
    """Another host's connection to the agent's store."""
    return direct_postgres_store


def health(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10) as response:
        return dict(json.load(response))


def job_paths(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return sorted(str(row[0]) for row in connection.execute("SELECT rel_path FROM jobs").fetchall())


def lost(agent: AgentProcess) -> bool:
    return any(str(line.get("event", "")).startswith("leadership lost") for line in agent.log_lines())


def test_a_leader_stopped_past_its_lease_is_refused_follows_and_later_leads_under_a_new_epoch(
    tmp_path: Path, agents: StartAgent, postgres_url: str, rival: DatabaseStore
) -> None:
    port = free_port()
    config = write_config(tmp_path, port=port)
    config.write_text(config.read_text() + f"store:\n  url: {postgres_url}\n  lease: 3s\nhost: {{name: nas-1}}\n")
    agent = agents(config)
    wait_for(lambda: agent.events("leadership taken: this host plans"), what="the agent leading", agent=agent)
    assert agent.events("leadership taken: this host plans")[0]["epoch"] == 1

    os.kill(agent.process.pid, signal.SIGSTOP)
    try:
        taken = wait_for(lambda: rival.take_or_renew_leadership("desktop", lease=LEASE), what="desktop taking over")
        assert getattr(taken, "epoch", None) == 2
        make_clip(tmp_path / "tv" / "Show" / "E02.mkv", seconds=1)  # appears while nas-1 is frozen
    finally:
        os.kill(agent.process.pid, signal.SIGCONT)

    def desktop_leads_and_nas_follows() -> bool:
        assert rival.take_or_renew_leadership("desktop", lease=LEASE) is not None
        return lost(agent)

    wait_for(desktop_leads_and_nas_follows, what="nas-1 learning it lost the lease", agent=agent)
    # Absence over a few of nas-1's passes (scan interval 1 s) while desktop keeps the lease.
    until = time.monotonic() + 3
    while time.monotonic() < until:
        assert rival.take_or_renew_leadership("desktop", lease=LEASE) is not None
        assert job_paths(postgres_url) == [], "a follower queued a job"
        assert health(port)["leader"] == {"host": "desktop", "epoch": 2}
        time.sleep(0.5)

    assert rival.resign("desktop", 2)
    wait_for(lambda: job_paths(postgres_url) == ["Show/E02.mkv"], what="nas-1 planning again", agent=agent)
    assert health(port)["leader"] == {"host": "nas-1", "epoch": 3}
    assert agent.stop() == 0
    assert [event["epoch"] for event in agent.events("leadership taken: this host plans")] == [1, 3]
