"""Fixtures for the integration tests: agents' HTTP APIs (tests/support/api.py) and dispatchers
(`dispatchers`, tests/support/dispatch.py); `sleeper`, a process to look at."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.api.app import init_app
from agent.api.context import ApiContext
from tests.support.api import Api, build_context, write_config
from tests.support.dispatch import dispatchers

__all__ = ["dispatchers"]  # dispatchers assembled in this process (tests/support/dispatch.py)

MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path, aiohttp_client: Any) -> AsyncIterator[MakeApi]:
    """Return a factory: make_api(**write_config options, sampler=None) -> Api on a fresh agent."""
    contexts: list[ApiContext] = []

    async def make(*, sampler: Any = None, root: Path | None = None, **options: Any) -> Api:
        folder = root or tmp_path / f"agent{len(contexts)}"
        folder.mkdir(parents=True, exist_ok=True)
        context = build_context(write_config(folder, **options), sampler=sampler)
        contexts.append(context)
        client = await aiohttp_client(init_app(context))
        return Api(context=context, client=client)

    yield make
    for context in contexts:
        context.checker.close()
        context.state.store.close()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    """An agent with libraries tv and movies and users admin and viewer."""
    return await make_api()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A `sleep 30` process to look at (its priority, its memory), killed at the end."""
    process = subprocess.Popen(["sleep", "30"])
    try:
        yield process
    finally:
        process.kill()
        process.wait()
