"""The HTTP service of an agent on a PostgreSQL store: live job changes over /api/realtime (the
change feed on PostgreSQL, one writing agent), and /health while its connection is cut and back."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import psycopg

from agent.store.postgres_store import open_postgres_store
from tests.support.postgres import PostgresCluster
from tests.support.realtime import hello, job_message, next_message

from .conftest import MakeApi


async def test_job_changes_reach_the_live_feed_from_the_agent_and_from_another_connection(
    make_api: MakeApi, postgres_url: str
) -> None:
    api = await make_api(extra=f"store:\n  url: {postgres_url}\n")
    store = api.context.state.store
    socket = await hello(api)

    job = store.enqueue(
        library="tv", rel_path="a.mkv", fingerprint="1:a", preset_hash="p", output_path="TV/a.mkv",
        reason="new", now=datetime.now(UTC),
    )  # fmt: skip
    assert job is not None
    assert (await next_message(socket, job_message(job.id)))["job"]["state"] == "queued"
    store.mark_running(job.id, now=datetime.now(UTC))
    await next_message(socket, job_message(job.id, "running"))

    other = open_postgres_store(postgres_url)  # `hb2r retry` or a second API process: its own connection
    try:
        other.cancel(job.id, now=datetime.now(UTC))
    finally:
        other.close()
    await next_message(socket, job_message(job.id, "cancelled"))
    await socket.close()


async def test_health_is_unhealthy_while_the_store_is_cut_off_and_healthy_again_after(
    make_api: MakeApi, postgres_url: str, postgres_cluster: PostgresCluster
) -> None:
    api = await make_api(extra=f"store:\n  url: {postgres_url}\n")
    assert (await api.client.get("/health")).status == 200
    database = postgres_url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_cluster.admin_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))

    statuses: list[tuple[int, str]] = []
    deadline = time.monotonic() + 10
    while (503, "unreachable") not in statuses or statuses[-1][0] != 200:
        assert time.monotonic() < deadline, statuses
        response = await api.client.get("/health")
        statuses.append((response.status, (await response.json())["database"]))
        await asyncio.sleep(0.2)  # /health keeps its database check for a second: ask again after it

    assert (503, "unreachable") in statuses  # the check that found the connection gone
    assert statuses[-1] == (200, "healthy")  # the next one connected again by itself
