"""Which targets want an event, and coalescing: decision tables over `agent.notify.policy`."""

from __future__ import annotations

import pytest

from agent.notify import events, policy
from agent.notify.events import Event, EventKind

DEAD_TV = events.job_dead(job_id=1, library="tv", path="a.mkv", reason="no title", host="nas")
DEAD_TV_LATER = events.job_dead(job_id=2, library="tv", path="b.mkv", reason="no title", host="nas")
DEAD_MOVIES = events.job_dead(job_id=3, library="movies", path="c.mkv", reason="no title", host="nas")
DRAINED = events.queue_drained(encoded_today=3, saved_today="1.2 GiB", dead=0, host="nas")


@pytest.mark.parametrize(
    "target_events, event, wanted",
    [
        pytest.param((), DEAD_TV, True, id="no-events-key-wants-every-event"),
        pytest.param(("job_dead",), DEAD_TV, True, id="a-listed-event-is-wanted"),
        pytest.param(("queue_drained",), DEAD_TV, False, id="an-unlisted-event-is-not"),
        pytest.param(
            ("queue_drained",),
            events.probe_message(host="nas", target="notify[0] (json)"),
            True,
            id="the-test-message-goes-to-every-target",
        ),
    ],
)
def test_a_target_wants_the_events_it_lists(target_events: tuple[str, ...], event: Event, wanted: bool) -> None:
    assert policy.wants(target_events, event) is wanted


def run(timeline: list[tuple[float, Event | None]], *, min_interval: float) -> list[tuple[float, str]]:
    """Feed events (or, for None, a flush) at their times through admit/flush; return (time, title) sent."""
    states: dict[policy.Key, policy.KeyState] = {}
    sent: list[tuple[float, str]] = []
    for now, event in timeline:
        if event is not None:
            key = policy.key_of(event)
            states[key], message = policy.admit(states.get(key), event, now=now, min_interval=min_interval)
            if message is not None:
                sent.append((now, message.title))
            continue
        for key, state in list(states.items()):
            kept, message = policy.flush(state, now=now, min_interval=min_interval)
            if kept is None:
                del states[key]
            else:
                states[key] = kept
            if message is not None:
                sent.append((now, message.title))
    return sent


@pytest.mark.parametrize(
    "timeline, expected",
    [
        pytest.param([(0, DEAD_TV)], [(0, "hb2r: job 1 is dead (tv)")], id="the-first-event-goes-at-once"),
        pytest.param(
            [(0, DEAD_TV), (10, DEAD_TV_LATER), (20, DEAD_TV_LATER), (599, None)],
            [(0, "hb2r: job 1 is dead (tv)")],
            id="repeats-within-the-interval-are-held",
        ),
        pytest.param(
            [(0, DEAD_TV), (10, DEAD_TV_LATER), (20, DEAD_TV_LATER), (600, None)],
            [(0, "hb2r: job 1 is dead (tv)"), (600, "hb2r: job 2 is dead (tv) (and 1 more)")],
            id="held-repeats-go-as-one-and-n-more-message-once-the-interval-passed",
        ),
        pytest.param(
            [(0, DEAD_TV), (10, DEAD_TV_LATER), (600, None)],
            [(0, "hb2r: job 1 is dead (tv)"), (600, "hb2r: job 2 is dead (tv)")],
            id="one-held-repeat-goes-as-itself",
        ),
        pytest.param(
            [(0, DEAD_TV), (10, DEAD_MOVIES), (20, DRAINED)],
            [(0, "hb2r: job 1 is dead (tv)"), (10, "hb2r: job 3 is dead (movies)"), (20, "hb2r: the queue is empty")],
            id="another-subject-or-kind-is-not-held",
        ),
        pytest.param(
            [(0, DEAD_TV), (700, DEAD_TV_LATER)],
            [(0, "hb2r: job 1 is dead (tv)"), (700, "hb2r: job 2 is dead (tv)")],
            id="a-repeat-after-the-interval-goes-at-once",
        ),
        pytest.param(
            [(0, DEAD_TV), (10, DEAD_TV_LATER), (600, None), (610, DEAD_TV)],
            [(0, "hb2r: job 1 is dead (tv)"), (600, "hb2r: job 2 is dead (tv)")],
            id="the-interval-starts-again-at-the-summary",
        ),
    ],
)
def test_coalescing(timeline: list[tuple[float, Event | None]], expected: list[tuple[float, str]]) -> None:
    assert run(timeline, min_interval=600) == expected


def test_no_interval_sends_every_event() -> None:
    timeline: list[tuple[float, Event | None]] = [(0, DEAD_TV), (0, DEAD_TV_LATER), (1, DEAD_TV)]

    assert [title for _, title in run(timeline, min_interval=0)] == [
        "hb2r: job 1 is dead (tv)",
        "hb2r: job 2 is dead (tv)",
        "hb2r: job 1 is dead (tv)",
    ]


def test_the_summary_says_how_many_more_were_held() -> None:
    held = policy.Held(latest=DEAD_TV_LATER, count=40, first_at=0)

    message = policy.summary(held)

    assert message.kind is EventKind.JOB_DEAD
    assert message.body.startswith(DEAD_TV_LATER.body)
    assert "And 39 more like it" in message.body


def test_the_next_summary_is_due_an_interval_after_its_keys_last_message() -> None:
    states = {
        policy.key_of(DEAD_TV): policy.KeyState(last_sent_at=100, held=policy.Held(DEAD_TV_LATER, 1, 150)),
        policy.key_of(DRAINED): policy.KeyState(last_sent_at=50),  # nothing held: nothing due
    }

    assert policy.next_due(states, min_interval=600) == 700
    assert policy.next_due({}, min_interval=600) is None
