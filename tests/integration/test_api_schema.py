"""The served OpenAPI document against the server itself, case by case (schemathesis).

A real agent's API (real config, real SQLite, the production `serve()` on a loopback port)
runs on its own event loop in a thread, because schemathesis calls it with blocking
`requests`. Schemathesis reads /api/openapi.json from it and, for every operation, sends
the document's examples, its boundary cases (coverage phase) and a fixed budget of random
valid and invalid requests; every answer must be documented (status, content type, body
schema), never a 500, valid input must not be refused with a 400 and invalid input must
not be accepted. The run is derandomized (a fixed seed), so a failure repeats.

Every case gets a token of its own, minted with the agent's secret for `admin`: logging out
(an operation under test) then ends only that case's token. Cancel, retry, pause and resume
change jobs and libraries, which is what they are for; each answer is still checked.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from agent.api import openapi
from agent.api.app import serve
from agent.auth import tokens
from agent.store import jobs, users
from tests.support.api import build_context, write_config
from tests.support.jobs import new_job

MAX_EXAMPLES = 60  # per operation, for the random (fuzzing) phase; the whole run takes a few seconds
SEED = 20240610


@dataclass
class LiveAgent:
    base_url: str
    secret: bytes
    admin: users.UserRecord

    def admin_token(self) -> str:
        issued = tokens.issue_token(
            secret=self.secret, user=self.admin, lifetime=timedelta(minutes=30), now=datetime.now(UTC)
        )
        return issued.token


def _seed_jobs(connection: sqlite3.Connection, *, count: int) -> None:
    """Queue jobs in several states, as the engine and dispatcher make them, so lists and ids have data."""
    now = datetime.now(UTC)
    for number in range(count):
        job = jobs.enqueue(
            connection,
            **new_job(
                f"Show/episode {number}.mkv",
                library="tv" if number % 2 else "movies",
                fingerprint=f"fp-{number}",
                preset_hash="preset-fast",
                output_path=f"TV/Show/episode {number}.mkv",
                now=now,
            ),
        )
        assert job is not None
        if number % 3 == 1:
            jobs.cancel(connection, job.id, now=now)
        elif number % 3 == 2:
            jobs.mark_running(connection, job.id, now=now)
            jobs.mark_done(connection, job.id, now=now)


@pytest.fixture(scope="module")
def live_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveAgent]:
    """Serve a real agent's API on loopback from a thread of its own; stop it after the module."""
    root = tmp_path_factory.mktemp("agent")
    # A high login limit: the limiter is tested elsewhere, here a 429 would only hide other answers.
    config_path = write_config(root, rate="100000/min")
    started: dict[str, object] = {}
    ready = threading.Event()
    loop = asyncio.new_event_loop()

    def run() -> None:
        # The SQLite connection belongs to the thread that opens it: build everything here.
        asyncio.set_event_loop(loop)
        context = build_context(config_path)
        try:
            _seed_jobs(context.state.store.database, count=12)
            runner = loop.run_until_complete(serve(context))
            admin = users.find(context.state.store.database, "admin")
            assert admin is not None
            host, port = context.state.config.server.listen.rsplit(":", 1)
            started["agent"] = LiveAgent(base_url=f"http://{host}:{port}", secret=context.secret, admin=admin)
        except BaseException as error:
            started["error"] = error
            ready.set()
            raise
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        context.checker.close()
        context.state.store.database.close()

    thread = threading.Thread(target=run, name="agent-api", daemon=True)
    thread.start()
    assert ready.wait(timeout=30), "the agent did not start serving"
    if "error" in started:
        raise AssertionError(f"the agent did not start: {started['error']!r}")
    agent = started["agent"]
    assert isinstance(agent, LiveAgent)
    try:
        yield agent
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
        # 101 is how /api/realtime accepts a WebSocket handshake: a success, not a server error.
        "checks": {
            "not_a_server_error": {"expected-statuses": ["101", "2xx", "3xx", "4xx"]},
            "positive_data_acceptance": {"expected-statuses": ["101", "2xx", "3xx", "401", "403", "404", "409", "429"]},
        },
    }
)
# The document as the agent builds it; the first test holds it equal to what the server serves.
schema = schemathesis.openapi.from_dict(openapi.document(), config=CONFIG)


def test_the_served_document_is_the_one_tested(live_agent: LiveAgent) -> None:
    with urllib.request.urlopen(f"{live_agent.base_url}/api/openapi.json", timeout=10) as response:  # noqa: S310
        assert json.load(response) == openapi.document()


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
)
def test_every_answer_is_the_documented_one(case: schemathesis.Case, live_agent: LiveAgent) -> None:
    case.call_and_validate(
        base_url=live_agent.base_url, headers={"Authorization": f"Bearer {live_agent.admin_token()}"}, timeout=10
    )
