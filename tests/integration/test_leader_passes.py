"""One planner at a time on a real PostgreSQL: two hosts' reconcile passes, each on its own connection.

The hosts are two AgentStates in this process with their own Store connections and host
names, on the same library folders (as two machines mounting one share). A leader "paused"
(SIGSTOP, a frozen VM) is one whose pass stops for longer than its lease without renewing:
here its scan waits, on the real clock, until the other host has taken the lease over.
"""

from __future__ import annotations

import asyncio
import io
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent import engine, logs
from agent.config import Config, load_config
from agent.engine import AgentState
from agent.leadership import PlannerLease, lead_pass
from agent.store import postgres_schema
from agent.store.database_store import DatabaseStore
from agent.store.jobs import JobState
from agent.store.leader import NotLeader
from agent.store.postgres import connect_postgres
from tests.support.configs import write_small_library
from tests.support.jobs import new_job
from tests.support.waiting import wait_for

LEASE = timedelta(seconds=3)
T = TypeVar("T")


@pytest.fixture
def stores(postgres_url: str) -> Iterator[tuple[DatabaseStore, DatabaseStore]]:
    opened = []
    for _ in range(2):
        database = connect_postgres(postgres_url)
        postgres_schema.migrate(database)
        opened.append(DatabaseStore(database))
    yield opened[0], opened[1]
    for store in opened:
        store.close()


def queued(store: DatabaseStore) -> list[str]:
    return sorted(job.rel_path for job in store.list_jobs(state=JobState.QUEUED))


@dataclass
class Host:
    """One host of two on the same library: its store connection, its lease and its agent's state."""

    store: DatabaseStore
    lease: PlannerLease
    state: AgentState


def two_hosts(config: Config, stores: tuple[DatabaseStore, DatabaseStore], *, log: Any) -> tuple[Host, Host]:
    """Hosts alpha and beta, each on its own connection to the store."""
    alpha, beta = (
        Host(store, PlannerLease(host=name, lease=LEASE, log=log), AgentState(config=config, store=store,
             preset_hashes={"tv": "p1"}))
        for name, store in zip(("alpha", "beta"), stores, strict=True)
    )  # fmt: skip
    return alpha, beta


def test_only_the_leaders_pass_writes_and_a_paused_former_leader_is_refused(
    tmp_path: Path, stores: tuple[DatabaseStore, DatabaseStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(write_small_library(tmp_path, files=2)).config
    output = io.StringIO()
    logs.configure(stream=output, json=True)
    log = logs.get_logger("test")
    first, second = two_hosts(config, stores, log=log)
    alpha_store, alpha, alpha_state = first.store, first.lease, first.state
    beta_store, beta, beta_state = second.store, second.lease, second.state

    async def scenario() -> None:
        taken = alpha.renew(alpha_store)
        assert taken is not None and taken.epoch == 1
        assert beta.renew(beta_store) is None

        assert await lead_pass(beta_state, beta, log=log) is None  # a follower plans nothing
        assert queued(beta_store) == [] and beta_state.last_pass is None
        assert await lead_pass(alpha_state, alpha, log=log) is not None
        assert queued(beta_store) == ["E00.mkv", "E01.mkv"]

        # alpha is paused in the middle of its next pass, past its lease; beta takes over meanwhile.
        (tmp_path / "tv" / "E02.mkv").write_bytes(b"episode 2" * 100)
        walk = engine.walk_for_pass

        def paused_walk(*args: Any, **kwargs: Any) -> Any:
            walked = walk(*args, **kwargs)
            wait_for(lambda: beta.renew(beta_store), what="beta to renew", deadline=10, interval=0.05)
            return walked

        monkeypatch.setattr(engine, "walk_for_pass", paused_walk)
        assert await lead_pass(alpha_state, alpha, log=log) is None  # its first write was refused
        monkeypatch.setattr(engine, "walk_for_pass", walk)

        assert alpha.held is None
        assert beta.held is not None and beta.held.epoch == 2
        assert queued(alpha_store) == ["E00.mkv", "E01.mkv"]  # the former leader wrote nothing
        assert alpha.renew(alpha_store) is None  # and comes back a follower

        assert await lead_pass(beta_state, beta, log=log) is not None
        assert queued(alpha_store) == ["E00.mkv", "E01.mkv", "E02.mkv"]

    asyncio.run(scenario())
    assert "reconcile pass stopped: this host no longer leads" in output.getvalue()


def test_a_takeover_waits_for_the_leaders_transaction_in_flight_then_fences_its_next_one(
    stores: tuple[DatabaseStore, DatabaseStore],
) -> None:
    alpha_store, beta_store = stores
    alpha = alpha_store.take_or_renew_leadership("alpha", lease=timedelta(milliseconds=200))
    assert alpha is not None
    fenced = alpha_store.fenced(alpha)
    taken: list[object] = []

    with fenced.transaction():  # checked while the lease held; the leader row is now share-locked
        job = fenced.enqueue(**new_job("E00.mkv", fingerprint="f0", now=datetime.now(UTC)))
        taker = threading.Thread(
            target=lambda: taken.append(
                wait_for(
                    lambda: beta_store.take_or_renew_leadership("beta", lease=LEASE),
                    what="beta to lead",
                    deadline=10,
                    interval=0.05,
                )
            )
        )
        taker.start()
        time.sleep(0.5)  # well past alpha's lease: beta's take must still be waiting on the row lock
        assert taken == []
    taker.join(timeout=10)

    assert len(taken) == 1 and getattr(taken[0], "epoch", None) == 2
    assert [job.rel_path for job in beta_store.list_jobs()] == ["E00.mkv"]  # the in-flight write committed
    assert job is not None
    with pytest.raises(NotLeader):
        fenced.cancel(job.id, now=datetime.now(UTC))


def test_a_host_that_leads_again_after_another_did_keeps_the_scan_memory_true(
    tmp_path: Path, stores: tuple[DatabaseStore, DatabaseStore]
) -> None:
    """A leader remembers the folders its passes recorded, not to read them every pass. While
    another host led, that host recorded its own walks: a folder made and then deleted must not
    stay in the scan memory, as if its files were still there, when the first host leads again."""
    config = load_config(write_small_library(tmp_path, files=1)).config
    logs.configure(stream=io.StringIO(), json=True)
    log = logs.get_logger("test")
    first, second = two_hosts(config, stores, log=log)
    alpha_store, alpha, alpha_state = first.store, first.lease, first.state
    beta_store, beta, beta_state = second.store, second.lease, second.state

    async def scenario() -> None:
        assert alpha.renew(alpha_store) is not None
        for _ in range(2):  # full, then one that keeps the folders it recorded
            assert await lead_pass(alpha_state, alpha, log=log) is not None
        assert "" in alpha_state.remembered_folders["tv"]
        alpha.resign(alpha_store)

        (tmp_path / "tv" / "Extras").mkdir()
        (tmp_path / "tv" / "Extras" / "Trailer.mkv").write_bytes(b"trailer" * 100)
        assert beta.renew(beta_store) is not None
        assert await lead_pass(beta_state, beta, log=log) is not None
        assert sorted(beta_store.load_folders("tv")) == ["", "Extras"]
        beta.resign(beta_store)

        shutil.rmtree(tmp_path / "tv" / "Extras")
        assert alpha.renew(alpha_store) is not None
        assert await lead_pass(alpha_state, alpha, log=log) is not None

    asyncio.run(scenario())
    assert sorted(alpha_store.load_folders("tv")) == [""]
    assert alpha_store.load_folder_files("tv", ["Extras"]) == {}
