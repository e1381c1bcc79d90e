"""The dispatcher of one agent, assembled in this process as `hb2r run` assembles it, for the tests that
drive it tick by tick: real SQLite, the real HandBrakeCLI, the real resource Sampler (with limits that
always admit)."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent import logs, scan
from agent.api.context import ApiContext, assemble
from agent.config import load_config
from agent.dispatcher import Dispatcher
from agent.engine import AgentState
from agent.resources import Sampler
from agent.store import jobs
from agent.store.db import open_database
from agent.store.sqlite import SqliteStore
from tests.support.jobs import new_job
from tests.support.waiting import wait_for_async

DEADLINE = 30.0


LIMITS = "{cpu_percent: 100, memory_percent: 100, min_free_memory: 1MiB, min_free_disk: 1MiB, max_jobs: 2}"


def write_config(
    root: Path,
    *,
    libraries: tuple[str, ...] = ("tv", "movies"),
    handbrake: str = "{}",
    args: str = "[]",
    options: dict[str, str] | None = None,
    extra: str = "",
    max_jobs: int = 2,
) -> Path:
    """Write a config of libraries (NAME -> archive/NAME upper-cased, preset p: Very Fast 480p30 with
    args, stable at once) with limits that always admit; `options` adds keys to a library's line
    (e.g. {"tv": "order: largest"}), `extra` top-level lines. Return its path."""
    for folder in ("tv", "movies", "archive"):
        (root / folder).mkdir(exist_ok=True)
    more = options or {}
    lines = "".join(
        f"  - {{name: {name}, source: {name}, output: {name.upper()}, preset: p, stable_after: 0s"
        + (f", {more[name]}" if name in more else "")
        + "}\n"
        for name in libraries
    )
    config = root / "config.yaml"
    config.write_text(
        "version: 1\n"
        "paths: {archive: archive, state_dir: state}\n"
        f"libraries:\n{lines}"
        f"presets: {{p: {{handbrake: 'Very Fast 480p30', args: {args}}}}}\n"
        f"handbrake: {handbrake}\n" + extra + f"limits: {LIMITS.replace('max_jobs: 2', f'max_jobs: {max_jobs}')}\n"
        "retry: {attempts: 3, backoff: 1h, max_backoff: 2h}\n"
        "auth: {jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4}\n"
    )
    return config


class Agent:
    """The engine state, dispatcher and API context of one agent, as `hb2r run` assembles them."""

    def __init__(self, config_path: Path) -> None:
        self.stream = io.StringIO()
        logs.configure(stream=self.stream, json=True)
        config = load_config(config_path).config
        self.state = AgentState(
            config=config, store=SqliteStore(open_database(config.paths.state_dir)), preset_hashes={"p": "p1"}
        )
        self.context: ApiContext = assemble(
            self.state,
            sampler=Sampler(config.paths.archive),
            secret=b"s" * 32,
            request_scan=lambda: None,
            log=logs.get_logger("test"),
            now=datetime.now(UTC),
        )
        self.dispatcher: Dispatcher = self.context.dispatcher

    def queue(self, library: str, rel_path: str) -> jobs.Job:
        """Queue the file as a pass would, with its real fingerprint (the dispatcher checks it after the encode)."""
        source = next(item.source for item in self.state.config.libraries if item.name == library) / rel_path
        fingerprint = scan.fingerprint(source, size=source.stat().st_size) if source.exists() else f"fp:{rel_path}"
        job = jobs.enqueue(
            self.state.store.database,
            **new_job(
                rel_path,
                library=library,
                fingerprint=fingerprint,
                output_path=f"{library.upper()}/{Path(rel_path).with_suffix('.mkv')}",
                now=datetime.now(UTC),
            ),
        )
        assert job is not None
        return job

    def job(self, job_id: int) -> jobs.Job:
        job = jobs.get(self.state.store.database, job_id)
        assert job is not None
        return job

    async def close(self) -> None:
        """Stop the dispatcher (its encodes end) and close the store."""
        await self.dispatcher.stop()
        self.context.checker.close()
        self.state.store.database.close()

    def events(self, name: str) -> list[str]:
        return [line for line in self.stream.getvalue().splitlines() if f'"event": "{name}"' in line]


@pytest.fixture
async def dispatchers() -> AsyncIterator[Callable[[Path], Agent]]:
    made: list[Agent] = []

    def make(config_path: Path) -> Agent:
        made.append(Agent(config_path))
        return made[-1]

    yield make
    for agent in made:
        await agent.close()


async def until(condition: Callable[[], object], *, what: str, tick: Dispatcher | None = None) -> None:
    """Wait (DEADLINE at most) for condition, ticking the dispatcher between polls if given."""
    await wait_for_async(condition, what=what, deadline=DEADLINE, interval=0.05, tick=tick.tick if tick else None)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended; only the parent's wait is missing.
    return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
