"""A library's condition (agent.conditions): the decision table, and when `since` is kept."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from agent.conditions import ERROR, PAUSED, PROGRESSING, READY, Condition, library_condition

EARLIER = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
NOW = EARLIER + timedelta(hours=1)


def decide(
    *,
    broken: str | None = None,
    paused: str | None = None,
    held: str | None = None,
    counts: Mapping[str, int] | None = None,
    waiting: int = 0,
    scanned: bool = True,
    previous: Condition | None = None,
) -> Condition:
    return library_condition(
        broken=broken,
        paused=paused,
        held=held,
        counts=counts or {},
        waiting=waiting,
        scanned=scanned,
        previous=previous,
        now=NOW,
    )


@pytest.mark.parametrize(
    ("facts", "status", "reason"),
    [
        pytest.param({}, READY, "every stable file has its transcode", id="nothing-to-do"),
        pytest.param(
            {"counts": {"done": 7, "dead": 2, "cancelled": 3}},
            READY,
            "every stable file has its transcode",
            id="dead-and-cancelled-are-not-work",
        ),
        pytest.param({"scanned": False}, PROGRESSING, "waiting for the first scan", id="not-scanned-yet"),
        pytest.param(
            {"scanned": False, "counts": {"queued": 4}},
            PROGRESSING,
            "waiting for the first scan",
            id="first-scan-wins-over-counts",
        ),
        pytest.param({"counts": {"running": 1}}, PROGRESSING, "1 running", id="running"),
        pytest.param({"counts": {"queued": 3}}, PROGRESSING, "3 queued", id="queued"),
        pytest.param({"counts": {"failed": 2}}, PROGRESSING, "2 waiting to retry", id="retrying"),
        pytest.param({"waiting": 5}, PROGRESSING, "5 waiting to be stable", id="waiting-to-be-stable"),
        pytest.param(
            {"counts": {"running": 1, "queued": 2, "failed": 3, "done": 9}, "waiting": 4},
            PROGRESSING,
            "1 running, 2 queued, 3 waiting to retry, 4 waiting to be stable",
            id="all-kinds-of-work-in-order",
        ),
        pytest.param(
            {"held": "paused by admin through the API", "counts": {"queued": 3}},
            PAUSED,
            "paused by admin through the API",
            id="held-by-an-operator",
        ),
        pytest.param(
            {"paused": "source folder is missing", "held": "paused by admin", "counts": {"queued": 1}},
            PAUSED,
            "source folder is missing",
            id="planner-pause-named-before-a-hold",
        ),
        pytest.param({"paused": "files vanished", "scanned": False}, PAUSED, "files vanished", id="paused-unscanned"),
        pytest.param(
            {"broken": "HandBrakeCLI has no preset 'x'", "paused": "files vanished", "held": "paused by admin"},
            ERROR,
            "HandBrakeCLI has no preset 'x'",
            id="error-wins-over-everything",
        ),
        pytest.param(
            {"broken": "HandBrakeCLI is missing", "counts": {"running": 1}},
            ERROR,
            "HandBrakeCLI is missing",
            id="error-while-running",
        ),
    ],
)
def test_condition_decision_table(facts: dict[str, object], status: str, reason: str) -> None:
    condition = decide(**facts)  # type: ignore[arg-type]
    assert (condition.status, condition.reason, condition.since) == (status, reason, NOW)


def test_since_is_kept_while_status_and_reason_stay_the_same() -> None:
    for status, reason, facts in (
        (READY, "every stable file has its transcode", {}),
        (PAUSED, "paused by admin", {"held": "paused by admin"}),
        (ERROR, "HandBrakeCLI is missing", {"broken": "HandBrakeCLI is missing"}),
    ):
        previous = Condition(status, reason, EARLIER)
        assert decide(previous=previous, **facts) == previous  # type: ignore[arg-type]


def test_progressing_keeps_since_while_its_counts_move() -> None:
    previous = Condition(PROGRESSING, "3 queued", EARLIER)
    condition = decide(counts={"running": 1, "queued": 2}, previous=previous)
    assert condition == Condition(PROGRESSING, "1 running, 2 queued", EARLIER)


@pytest.mark.parametrize(
    ("previous", "facts", "status"),
    [
        pytest.param(Condition(PROGRESSING, "1 queued", EARLIER), {}, READY, id="progressing-to-ready"),
        pytest.param(Condition(READY, "x", EARLIER), {"counts": {"queued": 1}}, PROGRESSING, id="ready-to-work"),
        pytest.param(Condition(READY, "x", EARLIER), {"held": "paused by admin"}, PAUSED, id="ready-to-held"),
        pytest.param(
            Condition(PAUSED, "paused by admin", EARLIER), {"paused": "files vanished"}, PAUSED, id="pause-reason-moves"
        ),
        pytest.param(
            Condition(ERROR, "HandBrakeCLI is missing", EARLIER),
            {"broken": "HandBrakeCLI has no preset 'x'"},
            ERROR,
            id="error-reason-moves",
        ),
        pytest.param(Condition(PAUSED, "paused by admin", EARLIER), {}, READY, id="resumed"),
    ],
)
def test_since_moves_to_now_when_status_or_reason_changes(
    previous: Condition, facts: dict[str, object], status: str
) -> None:
    condition = decide(previous=previous, **facts)  # type: ignore[arg-type]
    assert condition.status == status
    assert condition.since == NOW
