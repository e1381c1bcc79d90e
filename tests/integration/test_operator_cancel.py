"""An operator's cancel stays: the next reconcile pass must not queue the job again.

The engine cancels jobs too (the plan stops wanting them: a file being written again, a file
that vanished); those come back when the same content is wanted again. Real config, real
SQLite, the real API (aiohttp test server on loopback) and real reconcile passes.
"""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent import logs
from agent.api.app import init_app
from agent.api.context import ApiContext
from agent.engine import reconcile
from agent.store import jobs
from tests.support.api import ADMIN_HASH, ADMIN_PASSWORD, build_context
from tests.support.ports import free_port


def write_config(root: Path) -> Path:
    for folder in ("tv", "archive"):
        (root / folder).mkdir(exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        "libraries: [{name: tv, source: tv, output: TV, preset: fast, stable_after: 0s}]\n"
        "presets: {fast: {handbrake: 'Very Fast 480p30', container: mkv}}\n"
        f"server: {{listen: '127.0.0.1:{free_port()}'}}\n"
        "auth: {jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4}\n"
        f'users: [{{name: admin, role: admin, password_hash: "{ADMIN_HASH}"}}]\n'
    )
    return config


@pytest.fixture
async def agent(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[tuple[ApiContext, Any, dict[str, str]]]:
    logs.configure(stream=io.StringIO(), json=True)
    context = build_context(write_config(tmp_path))
    context.state.preset_hashes = {"fast": "p1"}
    client = await aiohttp_client(init_app(context))
    response = await client.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    headers = {"Authorization": f"Bearer {(await response.json())['token']}"}
    yield context, client, headers
    context.checker.close()
    context.state.store.database.close()


def write_source(context: ApiContext, name: str, content: bytes) -> Path:
    path = context.state.config.libraries[0].source / name
    path.write_bytes(content)
    old = path.stat().st_mtime - 3600
    os.utime(path, (old, old))
    return path


def states(context: ApiContext) -> list[tuple[str, str]]:
    return [(job.rel_path, str(job.state)) for job in jobs.list_jobs(context.state.store.database)]


async def test_a_job_an_operator_cancelled_stays_cancelled_until_retried_or_its_source_changes(
    agent: tuple[ApiContext, Any, dict[str, str]],
) -> None:
    context, client, headers = agent
    log = logs.get_logger("test")
    source = write_source(context, "E01.mkv", b"first content" * 1000)
    await reconcile(context.state, log=log)
    [job] = jobs.list_jobs(context.state.store.database)

    response = await client.post(f"/api/jobs/{job.id}/cancel", headers=headers)
    assert response.status == 200, await response.text()
    for _ in range(3):
        await reconcile(context.state, log=log)
    assert states(context) == [("E01.mkv", "cancelled")]
    assert [cancelled.id for cancelled in jobs.operator_cancelled(context.state.store.database)] == [job.id]
    assert context.state.last_pass is not None and not context.state.last_pass.pending  # no work left

    response = await client.post(f"/api/jobs/{job.id}/retry", headers=headers)
    assert response.status == 200, await response.text()
    await reconcile(context.state, log=log)
    assert states(context) == [("E01.mkv", "queued")]
    assert jobs.operator_cancelled(context.state.store.database) == []

    await client.post(f"/api/jobs/{job.id}/cancel", headers=headers)
    write_source(context, source.name, b"new content" * 1000)  # a new fingerprint: a new identity
    await reconcile(context.state, log=log)
    assert states(context) == [("E01.mkv", "cancelled"), ("E01.mkv", "queued")]


async def test_a_job_the_engine_cancelled_comes_back_when_the_file_is_wanted_again(
    agent: tuple[ApiContext, Any, dict[str, str]],
) -> None:
    context, _, _ = agent
    log = logs.get_logger("test")
    for number in (2, 3):  # so that one file moving away is not "the disk vanished"
        write_source(context, f"E0{number}.mkv", b"other content %d" % number * 1000)
    source = write_source(context, "E01.mkv", b"content" * 1000)
    await reconcile(context.state, log=log)
    parked = source.rename(source.with_name("elsewhere.part"))  # not a video: the plan stops wanting E01
    await reconcile(context.state, log=log)
    assert states(context)[0] == ("E01.mkv", "cancelled")

    parked.rename(source)
    await reconcile(context.state, log=log)
    assert states(context)[0] == ("E01.mkv", "queued")
