"""Which targets want an event, and coalescing: pure decisions, time passed in (monotonic seconds).

Coalescing, per target and per (kind, subject) of an event (see `agent.notify.events` for the
subjects): the first event is sent at once. Later ones within that target's `min_interval`
of the last message sent for the same kind and subject are held, not sent: they are counted,
and the latest is kept. Once `min_interval` has passed since that last message, the held ones
go out as ONE message: the latest event's text, followed by "and N more like it" (N: the
others held). Nothing is dropped silently: every held event is in a summary's count, and the
notifier counts each in /metrics (outcome "coalesced"). `min_interval: 0s` sends every event.

A job dying in each of 40 files of a library with a broken preset is thus one message at
once, then one "and 39 more" message ten minutes later, not 40 messages.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace

from agent.notify.events import Event, EventKind

Key = tuple[EventKind, str]


@dataclass(frozen=True)
class Held:
    """The events held back for one key: how many, the latest, and when the first came."""

    latest: Event
    count: int
    first_at: float


@dataclass(frozen=True)
class KeyState:
    """One key of one target: when its last message was sent, and what waits since."""

    last_sent_at: float
    held: Held | None = None


def wants(events: Collection[str], event: Event) -> bool:
    """Given a target's events (empty: every kind), return whether it wants event."""
    return event.kind is EventKind.TEST or not events or event.kind in events


def key_of(event: Event) -> Key:
    return (event.kind, event.subject)


def admit(state: KeyState | None, event: Event, *, now: float, min_interval: float) -> tuple[KeyState, Event | None]:
    """Given a key's state and a new event of that key, return the new state and the message to
    send now (None: held, to go out in a summary once the interval has passed)."""
    if state is None or (state.held is None and now - state.last_sent_at >= min_interval):
        return KeyState(last_sent_at=now), event
    if state.held is None:
        return replace(state, held=Held(latest=event, count=1, first_at=now)), None
    return replace(state, held=Held(latest=event, count=state.held.count + 1, first_at=state.held.first_at)), None


def flush(state: KeyState, *, now: float, min_interval: float) -> tuple[KeyState | None, Event | None]:
    """Given a key's state, return its new state (None: nothing left to remember) and the summary
    to send now, if its held events are due."""
    if state.held is None:
        return (None if now - state.last_sent_at >= min_interval else state), None
    if now - state.last_sent_at < min_interval:
        return state, None
    return KeyState(last_sent_at=now), summary(state.held)


def next_due(states: Mapping[Key, KeyState], *, min_interval: float) -> float | None:
    """Return when the first held summary is due (monotonic seconds), or None if nothing is held."""
    due = [state.last_sent_at + min_interval for state in states.values() if state.held is not None]
    return min(due) if due else None


def summary(held: Held) -> Event:
    """Return the one message for held events: the latest, and how many more there were."""
    if held.count == 1:
        return held.latest
    more = held.count - 1
    return replace(
        held.latest,
        title=f"{held.latest.title} (and {more} more)",
        body=f"{held.latest.body}\n\nAnd {more} more like it, held back so as not to flood you.",
    )
