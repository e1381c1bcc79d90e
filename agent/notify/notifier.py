"""The agent's notifications: events in, messages out, off the event loop, none lost silently.

`emit` is what the engine, the dispatcher and the start-up call where a fact is decided: it
never blocks and never raises. Each target has a lane: its own queue (at most MAX_QUEUED
messages) and a task that sends one message at a time, in order, through Apprise in a
daemon thread of its own (Apprise blocks): a service that hangs holds up neither the loop nor
the default pool's threads (fingerprints, probes), nor the process's exit at a stop. Which
targets want an event and what is coalesced is `agent.notify.policy`'s to decide.

A message that fails is tried again after the target's `backoff`, doubling (at most
MAX_BACKOFF_SECONDS), until `attempts` tries; then it counts as failed. Every outcome is
logged (naming the target by its place and scheme, never its URL) and counted in /metrics
(`hb2r_notifications_total{target, event, outcome}`: sent, retried, failed, coalesced). A
message that cannot be queued (the lane is full) or is still waiting when the agent stops
counts as failed and is logged: none is lost without a trace.

At a stop, held summaries are sent at once and the lanes get CLOSE_GRACE_SECONDS to empty,
without waiting out a backoff. A config reload that changes `notify:` closes the old lanes
the same way, in the background, and starts new ones (coalescing starts afresh).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agent.config.models import NotifyTarget
from agent.notify import policy
from agent.notify.deliver import Delivery, deliver, target_name
from agent.notify.events import Event

MAX_QUEUED = 500
MAX_BACKOFF_SECONDS = 300.0
CLOSE_GRACE_SECONDS = 3.0

Send = Callable[[str, Event], Delivery]


class NotificationObserver(Protocol):
    """Told each outcome (for /metrics)."""

    def notification(self, *, target: str, event: str, outcome: str) -> None: ...


@dataclass(frozen=True)
class Target:
    """What a lane needs of a `notify:` entry, times in seconds."""

    name: str
    url: str
    events: frozenset[str]
    min_interval: float
    attempts: int
    backoff: float

    @classmethod
    def of(cls, index: int, entry: NotifyTarget) -> Target:
        return cls(
            name=target_name(index, entry.url),
            url=entry.url,
            events=frozenset(entry.events),
            min_interval=entry.min_interval.total_seconds(),
            attempts=entry.attempts,
            backoff=entry.backoff.total_seconds(),
        )


def _deliver(url: str, event: Event) -> Delivery:
    return deliver(url, title=event.title, body=event.body, severity=event.severity)


class Notifier:
    def __init__(
        self,
        targets: Sequence[NotifyTarget],
        *,
        log: Any,
        observer: NotificationObserver | None = None,
        send: Send = _deliver,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.observer = observer
        self._send = send
        self.clock = clock
        self._config = tuple(targets)
        self._lanes = self._make_lanes(self._config)
        self._retiring: set[asyncio.Task[None]] = set()

    def _make_lanes(self, targets: Sequence[NotifyTarget]) -> list[_Lane]:
        return [_Lane(Target.of(index, entry), self) for index, entry in enumerate(targets)]

    def start(self) -> None:
        """Start each target's lane (on the running loop)."""
        for lane in self._lanes:
            lane.start()

    def emit(self, event: Event) -> None:
        """Hand event to every target that wants it; never blocks, never raises."""
        for lane in self._lanes:
            try:
                lane.offer(event)
            except Exception:  # a bug here must not fail the pass or the encode that told us
                self.log.exception("notification not queued", target=lane.target.name, event=str(event.kind))

    def reconfigure(self, targets: Sequence[NotifyTarget]) -> None:
        """Use the reloaded config's targets: the old lanes empty in the background, new ones start."""
        if tuple(targets) == self._config:
            return
        old, self._config = self._lanes, tuple(targets)
        self._lanes = self._make_lanes(self._config)
        self.start()
        task = asyncio.create_task(_close_lanes(old, grace=CLOSE_GRACE_SECONDS), name="notify-retire")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def close(self, *, grace: float = CLOSE_GRACE_SECONDS) -> None:
        """Send what is held, give the lanes `grace` seconds to empty, count what is left as failed."""
        await _close_lanes(self._lanes, grace=grace)
        if self._retiring:
            await asyncio.gather(*self._retiring, return_exceptions=True)

    def count(self, target: Target, event: Event, outcome: str) -> None:
        if self.observer is not None:
            self.observer.notification(target=target.name, event=str(event.kind), outcome=outcome)

    async def send(self, target: Target, event: Event) -> Delivery:
        """Deliver event to target in a daemon thread; return the outcome (a raised error is a failed delivery)."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Delivery] = loop.create_future()

        def settle(delivery: Delivery) -> None:
            if not answer.done():  # not cancelled meanwhile (a stop)
                answer.set_result(delivery)

        def work() -> None:
            try:
                delivery = self._send(target.url, event)
            except Exception as error:
                delivery = Delivery(False, f"{type(error).__name__} while sending")
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
                loop.call_soon_threadsafe(settle, delivery)

        threading.Thread(target=work, name=f"hb2r-notify-{target.name}", daemon=True).start()
        return await answer


async def _close_lanes(lanes: Sequence[_Lane], *, grace: float) -> None:
    for lane in lanes:
        lane.closing = True
        lane.wake.set()
        lane.stopping.set()
    tasks = [lane.task for lane in lanes if lane.task is not None]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for task in pending:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)
    for lane in lanes:
        lane.give_up("the agent stopped before it could be sent")


class _Lane:
    """One target: its coalescing state, its queue, the task that sends."""

    def __init__(self, target: Target, notifier: Notifier) -> None:
        self.target = target
        self.notifier = notifier
        self.states: dict[policy.Key, policy.KeyState] = {}
        self.queue: deque[Event] = deque()
        self.sending: Event | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self.stopping = asyncio.Event()  # set with closing: a backoff ends at once

    def start(self) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._run(), name=f"notify-{self.target.name}")

    def offer(self, event: Event) -> None:
        if not policy.wants(self.target.events, event):
            return
        key = policy.key_of(event)
        state, now_send = policy.admit(
            self.states.get(key), event, now=self.notifier.clock(), min_interval=self.target.min_interval
        )
        self.states[key] = state
        if now_send is None:
            self.notifier.count(self.target, event, "coalesced")
        else:
            self._enqueue(now_send)
        self.wake.set()

    def _enqueue(self, event: Event) -> None:
        if len(self.queue) >= MAX_QUEUED:
            self._failed(event, f"{MAX_QUEUED} messages already wait for this target", attempts=0)
            return
        self.queue.append(event)

    def _flush(self, *, everything: bool = False) -> float | None:
        """Queue the held summaries that are due (all of them if everything); return when the next is due."""
        now = self.notifier.clock()
        interval = 0.0 if everything else self.target.min_interval
        for key, state in list(self.states.items()):
            kept, summary = policy.flush(state, now=now, min_interval=interval)
            if kept is None:
                del self.states[key]
            else:
                self.states[key] = kept
            if summary is not None:
                self._enqueue(summary)
        return policy.next_due(self.states, min_interval=self.target.min_interval)

    async def _run(self) -> None:
        while True:
            due = self._flush(everything=self.closing)
            if self.queue:
                self.sending = self.queue.popleft()
                await self._send_with_retries(self.sending)
                self.sending = None
                continue
            if self.closing:
                return
            self.wake.clear()
            timeout = None if due is None else max(0.0, due - self.notifier.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)

    async def _send_with_retries(self, event: Event) -> None:
        target, log = self.target, self.notifier.log
        for attempt in range(1, target.attempts + 1):
            delivery = await self.notifier.send(target, event)
            if delivery.sent:
                self.notifier.count(target, event, "sent")
                log.info("notification sent", target=target.name, notification=str(event.kind), subject=event.subject,
                         attempt=attempt)  # fmt: skip
                return
            if attempt == target.attempts or self.closing:  # stopping: no backoff to wait out
                self._failed(event, delivery.reason or "not sent", attempts=attempt)
                return
            delay = min(MAX_BACKOFF_SECONDS, target.backoff * 2 ** (attempt - 1))
            self.notifier.count(target, event, "retried")
            log.warning("notification not sent; trying again", target=target.name, notification=str(event.kind),
                        attempt=attempt, retry_in_seconds=delay, reason=delivery.reason)  # fmt: skip
            with contextlib.suppress(TimeoutError):  # a stop cuts the wait short: then this try is the last
                await asyncio.wait_for(self.stopping.wait(), delay)

    def _failed(self, event: Event, reason: str, *, attempts: int) -> None:
        self.notifier.count(self.target, event, "failed")
        self.notifier.log.error("notification failed", target=self.target.name, notification=str(event.kind),
                                subject=event.subject, attempts=attempts, reason=reason)  # fmt: skip

    def give_up(self, reason: str) -> None:
        """Count as failed what is still queued or in flight (the lane has stopped)."""
        left = ([self.sending] if self.sending is not None else []) + list(self.queue)
        self.sending = None
        self.queue.clear()
        for state in self.states.values():
            if state.held is not None:
                left.append(policy.summary(state.held))
        self.states.clear()
        for event in left:
            self._failed(event, reason, attempts=0)
