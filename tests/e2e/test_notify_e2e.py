"""Notifications from `hb2r run` as a real process, through the real Apprise, to a real HTTP
receiver the test starts on 127.0.0.1 (`json://`), with the real HandBrakeCLI on small clips.

The states that only another host or a crash can leave (a job claimed by a host that died, an
agent killed) are made for real where that is cheap (SIGKILL) and by hand in the database where
it is not (a second host): as tests/e2e/test_recovery.py does.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from agent.config import load_config
from agent.observe import preset_hashes
from agent.scan import fingerprint
from agent.store import jobs, leases
from agent.store.db import open_database
from tests.support.agent_process import StartAgent
from tests.support.clips import make_clip
from tests.support.configs import PRESET
from tests.support.notify_receiver import Receiver, port_nobody_listens_on, receiving
from tests.support.outcomes import jobs_by_state, published
from tests.support.ports import free_port
from tests.support.waiting import wait_for


def write_config(root: Path, *, notify: str, port: int, min_free_disk: str = "1MiB", max_jobs: int = 2) -> Path:
    """Libraries tv (encodes), movies (its folder missing: paused) and docs (a preset HandBrake lacks: error)."""
    for folder in ("tv", "docs", "archive"):
        (root / folder).mkdir(exist_ok=True)
    config = root / "config.yaml"
    config.write_text(
        f"""version: 1
paths: {{archive: archive, state_dir: state}}
host: {{name: agent-a}}
libraries:
  - {{name: tv, source: tv, output: TV, preset: tv, stable_after: 1s}}
  - {{name: movies, source: movies, output: Movies, preset: tv}}
  - {{name: docs, source: docs, output: Docs, preset: missing}}
presets:
  tv: {{handbrake: "{PRESET}", container: mkv}}
  missing: {{handbrake: "No Such Preset", container: mkv}}
scan: {{interval: 1s}}
limits: {{cpu_percent: 100, memory_percent: 100, min_free_memory: 64MiB, min_free_disk: {min_free_disk},
          max_jobs: {max_jobs}}}
retry: {{attempts: 1, backoff: 1s, max_backoff: 2s}}
auth: {{jwt_secret_file: state/jwt.secret, bcrypt_rounds: 4}}
server: {{listen: "127.0.0.1:{port}"}}
notify:
{notify}"""
    )
    return config


def queue_by_hand(config_path: Path, files: dict[str, Path], *, claimed_by: str | None = None) -> None:
    """Queue a job for each tv file in the state database (as a pass would); the first claimed by
    another host, whose lease has run out: that host died holding it."""
    config = load_config(config_path).config
    database = open_database(config.paths.state_dir)
    preset_hash = preset_hashes(config, warn=print)["tv"]
    for rel_path, source in files.items():
        jobs.enqueue(
            database, library="tv", rel_path=rel_path, fingerprint=fingerprint(source, size=source.stat().st_size),
            preset_hash=preset_hash, output_path=f"TV/{rel_path}", reason="new", now=datetime.now(UTC),
        )  # fmt: skip
        if claimed_by is not None and rel_path == next(iter(files)):
            claim = leases.claim(
                database, claimed_by, libraries=["tv"], lease=timedelta(milliseconds=1), library_order=["tv"]
            )
            assert claim is not None and claim.job.rel_path == rel_path
    database.close()


def noise(path: Path) -> Path:
    """A file named like a video that HandBrakeCLI finds no title in: its job dies at once."""
    path.write_bytes(os.urandom(100_000))
    return path


def metric(port: int, *, target: str, outcome: str) -> float:
    """Return hb2r_notifications_total for target and outcome, read from the agent's GET /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "hb2r_notifications_total"
        and sample.labels.get("target") == target
        and sample.labels.get("outcome") == outcome
    )


def kinds(receiver: Receiver) -> Counter[str]:
    """Count the received messages by what they are about (their title without details)."""
    names = {
        "restarted after a crash": "started_after_crash",
        "was lost": "host_lost",
        "is paused": "library_paused",
        "cannot encode": "library_error",
        "is dead": "job_dead",
        "queue is empty": "queue_drained",
        "low on space": "archive_low_space",
        "stalled": "encode_stalled",
    }
    return Counter(next((kind for mark, kind in names.items() if mark in title), title) for title in receiver.titles())


def test_each_event_arrives_once(tmp_path: Path, agents: StartAgent) -> None:
    with receiving() as receiver:
        port = free_port()
        target = f'  - {{url: "{receiver.json_url()}", min_interval: 0s}}\n'  # every repeat would arrive
        config = write_config(tmp_path, notify=target, port=port)
        first = agents(config)
        wait_for(lambda: first.events("agent started"), what="the first agent up", agent=first)
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL  # a crash: it never stops cleanly
        receiver.clear()  # what the first agent told (its libraries' conditions) is not this test's
        good = make_clip(tmp_path / "tv" / "good.mkv", seconds=2)
        bad = noise(tmp_path / "tv" / "bad.mkv")
        queue_by_hand(config, {"good.mkv": good, "bad.mkv": bad}, claimed_by="agent-b")

        agent = agents(config)
        wait_for(lambda: published(tmp_path) == ["TV/good.mkv"], what="the lost host's job encoded here", agent=agent)
        receiver.wait_for(lambda titles: "queue_drained" in kinds(receiver), what="the queue drained")
        # The archive falls below its minimum: the config now asks for more room than any disk has.
        config.write_text(config.read_text().replace("min_free_disk: 1MiB", "min_free_disk: 1000TiB"))
        agent.process.send_signal(signal.SIGHUP)
        # By then many passes and ticks have run since each event: a repeat would have arrived too.
        receiver.wait_for(lambda titles: "archive_low_space" in kinds(receiver), what="archive low on space")
        assert agent.stop() == 0

    assert jobs_by_state(tmp_path) == {"done": ["good.mkv"], "dead": ["bad.mkv"]}
    assert kinds(receiver) == {
        "started_after_crash": 1,
        "host_lost": 1,
        "library_paused": 1,
        "library_error": 1,
        "job_dead": 1,
        "queue_drained": 1,
        "archive_low_space": 1,
    }
    bodies = "\n".join(str(message["message"]) for message in receiver.messages)
    assert "Host agent-b stopped renewing the lease of job" in bodies
    assert "source folder missing" in bodies  # the reason of the pause
    assert "No Such Preset" in bodies  # the reason of the error
    assert "Today: 1 file encoded" in bodies
    assert not (tmp_path / "state" / "agent.running").exists()  # this agent stopped cleanly


def test_repeats_are_coalesced_and_a_receiver_that_is_down_is_counted_as_failed_while_encoding_goes_on(
    tmp_path: Path, agents: StartAgent
) -> None:
    with receiving() as receiver:
        port = free_port()
        targets = (
            f'  - {{url: "{receiver.json_url("s3cret-hook")}", events: [job_dead], min_interval: 6s}}\n'
            f'  - {{url: "json://127.0.0.1:{port_nobody_listens_on()}/d0wn-secret", attempts: 2, backoff: 100ms}}\n'
        )
        config = write_config(tmp_path, notify=targets, port=port, max_jobs=3)
        for name in ("a.mkv", "b.mkv", "c.mkv"):
            noise(tmp_path / "tv" / name)
        make_clip(tmp_path / "tv" / "good.mkv", seconds=2)
        agent = agents(config)

        receiver.wait_for(lambda titles: len(titles) == 1, what="the first dead job's message")
        first_at = time.monotonic()
        wait_for(lambda: len(jobs_by_state(tmp_path).get("dead", [])) == 3, what="three dead jobs", agent=agent)
        titles = receiver.wait_for(lambda titles: len(titles) == 2, what="the 'and N more' message")
        summary_after = time.monotonic() - first_at
        wait_for(lambda: published(tmp_path) == ["TV/good.mkv"], what="the good clip published", agent=agent)
        down = "notify[1] (json)"
        wait_for(lambda: metric(port, target=down, outcome="failed") >= 1, what="a failure counted", agent=agent)
        retried = metric(port, target=down, outcome="retried")
        failures = agent.events("notification failed")
        assert agent.stop() == 0

    assert titles[0].startswith("hb2r: job ") and titles[0].endswith(" is dead (tv)")
    assert titles[1].endswith(" is dead (tv) (and 1 more)")
    assert summary_after > 3.0  # held until min_interval had passed
    assert retried >= 1
    assert failures and all(line["target"] == down for line in failures)
    log = (tmp_path / "agent.log").read_text()
    assert "s3cret-hook" not in log and "d0wn-secret" not in log  # no URL in the log
