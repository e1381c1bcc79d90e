"""The notifier against a real HTTP receiver on loopback, through the real Apprise (`json://`).

Each message arrives once; repeats are coalesced into one "and N more" message; a receiver
that is down is tried `attempts` times and then counted as failed in the real /metrics text
and logged without its URL; a receiver that hangs does not hold up the event loop; messages
still waiting at a stop are counted as failed, not dropped.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent import logs
from agent.config.models import NotifyTarget
from agent.metrics import Metrics, Snapshot
from agent.notify import events
from agent.notify.notifier import Notifier
from agent.store.sqlite import open_store
from tests.support.notify_receiver import Receiver, port_nobody_listens_on, receiving
from tests.support.waiting import wait_for_async

DEAD = [events.job_dead(job_id=n, library="tv", path=f"{n}.mkv", reason="no title", host="nas") for n in (1, 2, 3)]
DRAINED = events.queue_drained(encoded_today=2, saved_today="1.5 GiB", dead=0, host="nas")


eventually = partial(wait_for_async, deadline=20.0, interval=0.05)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as made:
        yield made


@pytest.fixture
def metrics(tmp_path: Path) -> Metrics:
    store = open_store(tmp_path / "state")
    snapshot = Snapshot(
        libraries=(), gate_reasons=(), running_encodes=0, suspended_encodes=0, last_scan_seconds=None,
        config_generation=1,
    )  # fmt: skip
    return Metrics(store=lambda: store, snapshot=lambda: snapshot, version="test")


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    logs.configure(stream=stream, json=True)
    return stream


def target(url: str, **settings: Any) -> NotifyTarget:
    return NotifyTarget.model_validate({"url": url, **settings})


def counted(metrics: Metrics, *, outcome: str, target: str = "notify[0] (json)") -> float:
    """Return the sum of hb2r_notifications_total for outcome and target, read from the /metrics text."""
    body, _ = metrics.render()
    total = 0.0
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            if sample.name == "hb2r_notifications_total" and sample.labels.get("outcome") == outcome:
                total += sample.value if sample.labels.get("target") == target else 0
    return total


async def test_each_event_arrives_once_with_its_title_and_body(receiver: Receiver, metrics: Metrics) -> None:
    notifier = Notifier([target(receiver.json_url(), min_interval="0s")], log=logs.get_logger(), observer=metrics)
    notifier.start()

    notifier.emit(DEAD[0])
    notifier.emit(DRAINED)
    await eventually(lambda: len(receiver.messages) == 2, what="two messages")
    await notifier.close()

    assert [(m["title"], m["type"]) for m in receiver.messages] == [
        ("hb2r: job 1 is dead (tv)", "failure"),
        ("hb2r: the queue is empty", "success"),
    ]
    assert "Today: 2 files encoded, 1.5 GiB saved." in receiver.messages[1]["message"]
    assert counted(metrics, outcome="sent") == 2


async def test_a_target_gets_only_the_events_it_lists(receiver: Receiver, metrics: Metrics) -> None:
    notifier = Notifier(
        [target(receiver.json_url(), events=["queue_drained"])], log=logs.get_logger(), observer=metrics
    )
    notifier.start()

    notifier.emit(DEAD[0])
    notifier.emit(DRAINED)
    await eventually(lambda: len(receiver.messages) == 1, what="the drained message")
    await notifier.close()

    assert receiver.titles() == ["hb2r: the queue is empty"]


async def test_repeats_within_min_interval_arrive_as_one_and_n_more_message(
    receiver: Receiver, metrics: Metrics
) -> None:
    notifier = Notifier([target(receiver.json_url(), min_interval="1s")], log=logs.get_logger(), observer=metrics)
    notifier.start()
    started = time.monotonic()

    for event in DEAD:
        notifier.emit(event)
    await eventually(lambda: len(receiver.messages) == 2, what="the first message and the summary")
    waited = time.monotonic() - started
    await notifier.close()

    assert receiver.titles() == ["hb2r: job 1 is dead (tv)", "hb2r: job 3 is dead (tv) (and 1 more)"]
    assert waited >= 1.0  # the summary waited out min_interval
    assert counted(metrics, outcome="coalesced") == 2
    assert counted(metrics, outcome="sent") == 2


async def test_a_receiver_that_is_down_is_retried_then_counted_as_failed_and_logged_without_its_url(
    metrics: Metrics, log_stream: io.StringIO
) -> None:
    url = f"json://hb2r:s3cretpass@127.0.0.1:{port_nobody_listens_on()}/t0pic-secret"
    notifier = Notifier([target(url, attempts=3, backoff="50ms")], log=logs.get_logger(), observer=metrics)
    notifier.start()

    notifier.emit(DEAD[0])
    await eventually(lambda: counted(metrics, outcome="failed") == 1, what="the message counted as failed")
    await notifier.close()

    assert counted(metrics, outcome="retried") == 2
    assert counted(metrics, outcome="sent") == 0
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    failures = [line for line in lines if line["event"] == "notification failed"]
    assert [(line["target"], line["attempts"]) for line in failures] == [("notify[0] (json)", 3)]
    assert "Connection error" in failures[0]["reason"]
    assert not any(secret in log_stream.getvalue() for secret in ("s3cretpass", "t0pic-secret", str(url)))


async def test_a_receiver_that_hangs_does_not_hold_up_the_event_loop(metrics: Metrics) -> None:
    with receiving(hang=True) as hanging, receiving() as working:
        notifier = Notifier(
            [target(hanging.json_url(rto="2"), attempts=1), target(working.json_url())],
            log=logs.get_logger(),
            observer=metrics,
        )
        notifier.start()
        notifier.emit(DEAD[0])
        # While the first target's send waits for an answer, the loop keeps ticking every 20 ms.
        lags = []
        for _ in range(50):
            before = time.monotonic()
            await asyncio.sleep(0.02)
            lags.append(time.monotonic() - before - 0.02)
        await eventually(lambda: counted(metrics, outcome="failed") == 1, what="the hanging send to time out")
        await notifier.close()

    assert max(lags) < 0.25
    assert working.titles() == ["hb2r: job 1 is dead (tv)"]  # the other target was not held up either


async def test_messages_still_waiting_at_a_stop_are_counted_as_failed(metrics: Metrics) -> None:
    url = f"json://127.0.0.1:{port_nobody_listens_on()}/hook"
    notifier = Notifier([target(url, attempts=5, backoff="10s")], log=logs.get_logger(), observer=metrics)
    notifier.start()

    notifier.emit(DEAD[0])
    notifier.emit(DRAINED)
    await eventually(lambda: counted(metrics, outcome="retried") == 1, what="the first try to fail")
    started = time.monotonic()
    await notifier.close(grace=2.0)

    assert time.monotonic() - started < 2.0  # the stop cut the 10 s backoff short
    assert counted(metrics, outcome="failed") == 2
    assert counted(metrics, outcome="sent") == 0


async def test_after_a_reload_events_go_to_the_new_targets(receiver: Receiver, metrics: Metrics) -> None:
    with receiving() as new:
        notifier = Notifier([target(receiver.json_url(), min_interval="0s")], log=logs.get_logger(), observer=metrics)
        notifier.start()
        notifier.emit(DEAD[0])
        await eventually(lambda: len(receiver.messages) == 1, what="the first message")

        notifier.reconfigure([target(new.json_url(), min_interval="0s")])
        notifier.emit(DRAINED)
        await eventually(lambda: len(new.messages) == 1, what="the message to the new target")
        await notifier.close()

    assert receiver.titles() == ["hb2r: job 1 is dead (tv)"]
    assert new.titles() == ["hb2r: the queue is empty"]
