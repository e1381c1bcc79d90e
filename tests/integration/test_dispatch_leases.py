"""The runner under leases: what a host does when its job is taken over, given back or cannot run here.

Real SQLite (one file shared by two "hosts": two agents in this process, each with its own
config and host name, as two machines share one store), the real HandBrakeCLI on clips made
with ffmpeg and the real dispatcher. A second host is a real claimant: its own store
connection calls `expire_leases` and `claim`, or its own dispatcher ticks. A host that stops
renewing is made by not ticking it (a frozen host renews nothing either); its progress writes,
which also renew, are spaced out past the test (PROGRESS_WRITE_SECONDS).
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent import dispatcher, logs, recovery, scan
from agent.api.health import health_report
from agent.config import load_config
from agent.publish import instance_tag, partial_path, prepare_partial_dir
from agent.runtime import clean_own_partials
from agent.store import jobs
from agent.store.db import open_database
from agent.store.leases import Claim
from agent.store.sqlite import SqliteStore
from tests.support.clips import make_clip
from tests.support.dispatch import LIMITS, Agent, alive, until

SLOW = "['--encoder-preset', 'veryslow']"


def host_config(
    root: Path,
    *,
    host: str,
    source: Path,
    args: str = "[]",
    handbrake: str = "{}",
) -> Path:
    """A host's own config: its own name and path of the tv library; the state and archive shared."""
    (root / "archive").mkdir(exist_ok=True)
    config = root / f"{host}.yaml"
    config.write_text(
        "version: 1\n"
        f"paths: {{archive: {root / 'archive'}, state_dir: {root / 'state'}}}\n"
        f"libraries:\n  - {{name: tv, source: {source}, output: TV, preset: p, stable_after: 0s}}\n"
        f"presets: {{p: {{handbrake: 'Very Fast 480p30', args: {args}}}}}\n"
        f"handbrake: {handbrake}\n"
        f"limits: {LIMITS}\n"
        "retry: {attempts: 3, backoff: 1h, max_backoff: 2h}\n"
        f"store: {{lease: 3s}}\nhost: {{name: {host}}}\n"
        f"auth: {{jwt_secret_file: {root / 'state' / 'jwt.secret'}, bcrypt_rounds: 4}}\n"
    )
    return config


@pytest.fixture
def silent_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress writes renew the lease too: space them past the test, so only ticks renew."""
    monkeypatch.setattr(dispatcher, "PROGRESS_WRITE_SECONDS", 3600.0)


@pytest.fixture
async def hosts() -> AsyncIterator[Callable[[Path], Agent]]:
    made: list[Agent] = []
    stream = io.StringIO()  # one log for all: structlog's configuration is global

    def make(config_path: Path) -> Agent:
        made.append(Agent(config_path))
        logs.configure(stream=stream, json=True)
        made[-1].stream = stream
        return made[-1]

    yield make
    for agent in made:
        await agent.close()


@pytest.fixture
def other_store(tmp_path: Path) -> Iterator[SqliteStore]:
    """Another host's own connection to the shared store."""
    store = SqliteStore(open_database(tmp_path / "state"))
    yield store
    store.close()


def events(agent: Agent, name: str, **fields: object) -> list[dict[str, object]]:
    found = [json.loads(line) for line in agent.events(name)]
    return [event for event in found if all(event.get(key) == value for key, value in fields.items())]


def temp_files(root: Path) -> list[str]:
    return sorted(path.name for path in (root / "archive" / ".hb2r-partial").iterdir())


def outputs(root: Path) -> list[str]:
    folder = root / "archive" / "TV"
    return sorted(path.name for path in folder.iterdir()) if folder.is_dir() else []


async def take_over(store: SqliteStore, job_id: int, *, host: str) -> Claim:
    """As another host: wait for the job's lease to run out, put it back and claim it."""
    end = time.monotonic() + 20
    while True:
        expired = store.expire_leases(host_loss_cap=3)
        if any(job.id == job_id for job in expired):
            claim = store.claim(host, libraries=["tv"], lease=timedelta(seconds=60), library_order=["tv"])
            assert claim is not None and claim.job.id == job_id
            return claim
        assert time.monotonic() < end, "the lease never ran out"
        await until(lambda: True, what="a moment")


async def test_a_job_taken_over_by_another_host_is_killed_here_and_published_once_by_the_new_holder(
    tmp_path: Path, hosts: Callable[[Path], Agent], silent_progress: None
) -> None:
    make_clip(tmp_path / "tv" / "long.mkv", seconds=20, size="640x360")
    alpha = hosts(host_config(tmp_path, host="alpha", source=tmp_path / "tv", args=SLOW))
    beta = hosts(host_config(tmp_path, host="beta", source=tmp_path / "tv"))
    job = alpha.queue("tv", "long.mkv")
    alpha.dispatcher.tick()
    entry = alpha.dispatcher.running[job.id]
    await until(lambda: entry.encode is not None and entry.progress > 0, what="alpha's encode to make progress")
    assert entry.encode is not None and entry.token is not None
    pid, alphas_temp = entry.encode.pid, entry.temp
    assert alphas_temp is not None and alphas_temp.exists()
    assert alphas_temp.name.startswith("alpha-") and alphas_temp.name.endswith(f"-{job.id}-{entry.token}.mkv")

    # alpha is frozen (no ticks); beta's own ticks expire alpha's lease and claim the job.
    await until(
        lambda: (lease := beta.state.store.lease_of(job.id)) is not None and lease.host == "beta",
        what="beta to take the job over",
        tick=beta.dispatcher,
    )
    alpha.dispatcher.tick()  # alpha's next heartbeat finds the job lost

    await until(lambda: job.id not in alpha.dispatcher.running, what="alpha to stop its encode")
    assert not alive(pid)
    assert not alphas_temp.exists()
    assert events(alpha, "job lost", job=job.id, host="alpha", fence=entry.token)
    await until(
        lambda: beta.job(job.id).state is jobs.JobState.DONE, what="beta to publish the job", tick=beta.dispatcher
    )
    assert outputs(tmp_path) == ["long.mkv"]  # exactly one output
    assert temp_files(tmp_path) == []
    assert not events(alpha, "job published", job=job.id, host="alpha")
    assert len(beta.state.store.load_ledger().entries) == 1
    lease = beta.state.store.lease_of(job.id)
    assert lease is not None and lease.host_losses == 1 and beta.job(job.id).attempts == 0


async def test_a_stale_token_publishes_nothing(
    tmp_path: Path, hosts: Callable[[Path], Agent], other_store: SqliteStore, silent_progress: None
) -> None:
    make_clip(tmp_path / "tv" / "short.mkv", seconds=4, size="640x360")
    alpha = hosts(host_config(tmp_path, host="alpha", source=tmp_path / "tv", args=SLOW))
    job = alpha.queue("tv", "short.mkv")
    alpha.dispatcher.tick()
    entry = alpha.dispatcher.running[job.id]

    # No tick renews alpha's lease; the encode runs to its end and asks to publish with its old token.
    beta = await take_over(other_store, job.id, host="beta")
    await until(lambda: job.id not in alpha.dispatcher.running, what="alpha's encode to end")

    assert entry.token is not None and entry.token < beta.token
    assert events(alpha, "job lost: not published", job=job.id, fence=entry.token)
    assert outputs(tmp_path) == []  # the holder, beta, makes the output
    assert temp_files(tmp_path) == []
    held = alpha.job(job.id)
    assert held.state is jobs.JobState.RUNNING and held.attempts == 0
    lease = alpha.state.store.lease_of(job.id)
    assert lease is not None and (lease.host, lease.token) == ("beta", beta.token)
    assert alpha.state.store.load_ledger().entries == ()


async def test_stopping_gives_this_hosts_claims_back_at_once(
    tmp_path: Path, hosts: Callable[[Path], Agent], other_store: SqliteStore
) -> None:
    make_clip(tmp_path / "tv" / "long.mkv", seconds=20, size="640x360")
    alpha = hosts(host_config(tmp_path, host="alpha", source=tmp_path / "tv", args=SLOW))
    job = alpha.queue("tv", "long.mkv")
    alpha.dispatcher.tick()
    entry = alpha.dispatcher.running[job.id]
    await until(lambda: entry.encode is not None and entry.progress > 0, what="the encode to make progress")
    assert entry.encode is not None
    pid = entry.encode.pid

    await alpha.dispatcher.stop()

    assert not alive(pid)
    released = alpha.job(job.id)
    assert released.state is jobs.JobState.QUEUED and released.attempts == 0
    assert events(alpha, "job released", job=job.id, host="alpha")
    assert temp_files(tmp_path) == []
    claim = other_store.claim("beta", libraries=["tv"], lease=timedelta(seconds=60), library_order=["tv"])
    assert claim is not None and claim.job.id == job.id  # at once, not after the lease
    lease = other_store.lease_of(job.id)
    assert lease is not None and lease.host_losses == 0


async def test_a_host_whose_library_folder_is_missing_claims_nothing_from_it_and_another_host_encodes_it(
    tmp_path: Path, hosts: Callable[[Path], Agent]
) -> None:
    make_clip(tmp_path / "alpha-mnt" / "clip.mkv", seconds=1)
    (tmp_path / "beta-mnt").mkdir()  # the same library, mounted at beta's path
    shutil.copy2(tmp_path / "alpha-mnt" / "clip.mkv", tmp_path / "beta-mnt" / "clip.mkv")
    alpha = hosts(host_config(tmp_path, host="alpha", source=tmp_path / "alpha-mnt"))
    beta = hosts(host_config(tmp_path, host="beta", source=tmp_path / "beta-mnt"))
    job = alpha.queue("tv", "clip.mkv")
    (tmp_path / "alpha-mnt").rename(tmp_path / "unmounted")  # alpha's mount is gone

    for _ in range(3):
        alpha.dispatcher.tick()

    assert alpha.job(job.id).state is jobs.JobState.QUEUED
    assert events(alpha, "job claimed", job=job.id, host="alpha") == []
    assert "tv" in alpha.dispatcher.unreadable_here
    report = health_report(alpha.context)
    assert any("tv not claimed on this host" in problem for problem in report["problems"]), report

    await until(lambda: beta.job(job.id).state is not jobs.JobState.QUEUED and job.id not in beta.dispatcher.running,
                what="beta to encode it", tick=beta.dispatcher)  # fmt: skip
    assert beta.job(job.id).state is jobs.JobState.DONE, beta.job(job.id)
    assert outputs(tmp_path) == ["clip.mkv"]

    (tmp_path / "unmounted").rename(tmp_path / "alpha-mnt")
    alpha.dispatcher.tick()
    assert "tv" not in alpha.dispatcher.unreadable_here  # readable again: claimed from again


async def test_a_host_whose_library_mount_point_is_left_empty_claims_nothing_and_the_job_stays_alive(
    tmp_path: Path, hosts: Callable[[Path], Agent]
) -> None:
    make_clip(tmp_path / "alpha-mnt" / "clip.mkv", seconds=1)
    alpha = hosts(host_config(tmp_path, host="alpha", source=tmp_path / "alpha-mnt"))
    seen = scan.scan_library(alpha.state.config.libraries[0])  # the planning host's good scan: one file
    alpha.state.store.record_scan(library="tv", files=seen.files, previous={}, now_ns=time.time_ns(), scanned_at="now")
    job = alpha.queue("tv", "clip.mkv")
    (tmp_path / "alpha-mnt").rename(tmp_path / "unmounted")
    (tmp_path / "alpha-mnt").mkdir()  # an unmounted share leaves its mount point: readable, empty

    for _ in range(3):
        alpha.dispatcher.tick()
    await until(lambda: job.id not in alpha.dispatcher.running, what="nothing running", tick=alpha.dispatcher)

    queued = alpha.job(job.id)
    assert queued.state is jobs.JobState.QUEUED and queued.attempts == 0, queued  # not dead as "source gone"
    assert events(alpha, "job claimed", job=job.id, host="alpha") == []
    assert "tv" in alpha.dispatcher.unreadable_here

    (tmp_path / "alpha-mnt").rmdir()
    (tmp_path / "unmounted").rename(tmp_path / "alpha-mnt")  # mounted again
    alpha.dispatcher.tick()
    assert "tv" not in alpha.dispatcher.unreadable_here


async def test_a_library_folder_lost_during_an_encode_gives_the_job_back_without_spending_an_attempt(
    tmp_path: Path, hosts: Callable[[Path], Agent]
) -> None:
    make_clip(tmp_path / "alpha-mnt" / "brief.mkv", seconds=8, size="640x360")
    alpha = hosts(host_config(tmp_path, host="alpha", source=tmp_path / "alpha-mnt", args=SLOW))
    job = alpha.queue("tv", "brief.mkv")
    alpha.dispatcher.tick()
    entry = alpha.dispatcher.running[job.id]
    await until(lambda: entry.encode is not None and entry.progress > 0, what="the encode to make progress")
    (tmp_path / "alpha-mnt").rename(tmp_path / "unmounted")  # HandBrakeCLI keeps reading its open file

    await until(lambda: job.id not in alpha.dispatcher.running, what="the encode to end", tick=alpha.dispatcher)

    released = alpha.job(job.id)
    assert released.state is jobs.JobState.QUEUED and released.attempts == 0, released
    assert "cannot be read on this host" in (released.error or "")
    lease = alpha.state.store.lease_of(job.id)
    assert lease is not None and lease.host is None and lease.host_losses == 0
    assert outputs(tmp_path) == [] and temp_files(tmp_path) == []
    for _ in range(3):
        alpha.dispatcher.tick()
    assert alpha.job(job.id).state is jobs.JobState.QUEUED  # not claimed again while unreadable
    assert len(events(alpha, "job claimed", job=job.id, host="alpha")) == 1


async def test_start_up_cleanup_leaves_another_hosts_temp_files_alone(tmp_path: Path) -> None:
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=1)
    alpha = host_config(tmp_path, host="alpha", source=tmp_path / "tv")
    beta = host_config(tmp_path, host="beta", source=tmp_path / "tv")
    configs = {name: load_config(path).config for name, path in (("alpha", alpha), ("beta", beta))}
    prepare_partial_dir(tmp_path / "archive")
    tag = instance_tag(tmp_path / "state")  # same machine, same state folder: only the host tells them apart
    alphas = partial_path(tmp_path / "archive", job_id=1, extension=".mkv", instance=tag, host="alpha", token=1)
    betas = partial_path(tmp_path / "archive", job_id=2, extension=".mkv", instance=tag, host="beta", token=2)
    alphas.write_bytes(b"left by alpha's crash")
    betas.write_bytes(b"beta is still encoding this")

    clean_own_partials(configs["alpha"], log=logs.get_logger("test"))

    assert not alphas.exists()
    assert betas.read_bytes() == b"beta is still encoding this"


async def test_a_handbrake_that_cannot_start_gives_the_job_back_without_spending_an_attempt(
    tmp_path: Path, hosts: Callable[[Path], Agent]
) -> None:
    binary = tmp_path / "bin" / "HandBrakeCLI"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o644)  # not executable
    make_clip(tmp_path / "tv" / "clip.mkv", seconds=1)
    alpha = hosts(host_config(tmp_path, host="alpha", source=tmp_path / "tv", handbrake=f"{{binary: {binary}}}"))
    job = alpha.queue("tv", "clip.mkv")

    alpha.dispatcher.tick()
    await until(lambda: job.id not in alpha.dispatcher.running, what="alpha to give the job back")

    released = alpha.job(job.id)
    assert released.state is jobs.JobState.QUEUED and released.attempts == 0
    assert "HandBrakeCLI cannot start on this host" in (released.error or "")
    for _ in range(3):
        alpha.dispatcher.tick()
    assert alpha.job(job.id).state is jobs.JobState.QUEUED
    assert len(events(alpha, "job claimed", job=job.id)) == 1  # not claimed again while it cannot start
    report = health_report(alpha.context)
    assert any("no job claimed on this host" in problem for problem in report["problems"]), report
    assert temp_files(tmp_path) == []


async def test_the_space_another_hosts_encode_will_still_write_holds_a_start_back(
    tmp_path: Path, hosts: Callable[[Path], Agent], other_store: SqliteStore
) -> None:
    make_clip(tmp_path / "tv" / "a.mkv", seconds=1)
    make_clip(tmp_path / "tv" / "b.mkv", seconds=1)
    alpha = hosts(host_config(tmp_path, host="alpha", source=tmp_path / "tv"))
    theirs = alpha.queue("tv", "a.mkv")
    mine = alpha.queue("tv", "b.mkv")
    claim = other_store.claim("beta", libraries=["tv"], lease=timedelta(seconds=60), library_order=["tv"])
    assert claim is not None and claim.job.id == theirs.id
    free = shutil.disk_usage(tmp_path / "archive").free
    # beta's encode says, by its heartbeat, that it will still write more than the archive has free.
    assert other_store.heartbeat(theirs.id, claim.token, progress=5.0, lease=timedelta(seconds=60), remaining=free).held

    for _ in range(3):
        alpha.dispatcher.tick()

    assert alpha.job(mine.id).state is jobs.JobState.QUEUED  # not started: the space is beta's
    assert any("disk" in reason or "space" in reason for reason in alpha.dispatcher.blocked_reasons), (
        alpha.dispatcher.blocked_reasons
    )
    other_store.heartbeat(theirs.id, claim.token, progress=50.0, lease=timedelta(seconds=60), remaining=0)
    alpha.dispatcher.tick()
    assert alpha.job(mine.id).state is not jobs.JobState.QUEUED  # the space is free again: started


async def test_start_up_settles_only_this_hosts_jobs(tmp_path: Path, other_store: SqliteStore) -> None:
    # beta crashed after publishing, before recording it; alpha starting up must leave that to beta.
    source = make_clip(tmp_path / "tv" / "clip.mkv", seconds=1)
    alpha, beta = (
        load_config(host_config(tmp_path, host=name, source=tmp_path / "tv")).config for name in ("alpha", "beta")
    )
    queued = other_store.enqueue(
        library="tv",
        rel_path="clip.mkv",
        fingerprint=scan.fingerprint(source, size=source.stat().st_size),
        preset_hash="p1",
        output_path="TV/clip.mkv",
        reason="new",
        now=datetime.now(UTC),
    )
    assert queued is not None
    claim = other_store.claim("beta", libraries=["tv"], lease=timedelta(seconds=60), library_order=["tv"])
    assert claim is not None
    (tmp_path / "archive" / "TV").mkdir(parents=True)
    shutil.copy(source, tmp_path / "archive" / "TV" / "clip.mkv")  # published by beta just now

    assert recovery.settle_published(other_store, alpha, now=datetime.now(UTC)) == []
    assert other_store.requeue_running(now=datetime.now(UTC), host="alpha") == []
    running = other_store.get_job(queued.id)
    assert running is not None and running.state is jobs.JobState.RUNNING

    (settled,) = recovery.settle_published(other_store, beta, now=datetime.now(UTC))
    assert settled.id == queued.id and settled.state is jobs.JobState.DONE
