"""The job state machine's table: every legal transition, and illegal ones refused by name."""

from __future__ import annotations

import pytest

from agent.store.transitions import (
    TRANSITIONS,
    JobEvent,
    JobState,
    JobStateError,
    check,
    next_state,
    sources,
)

Q, R, DONE, F, DEAD, C = (
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.DONE,
    JobState.FAILED,
    JobState.DEAD,
    JobState.CANCELLED,
)

LEGAL = [
    (Q, JobEvent.START, R),
    (F, JobEvent.START, R),
    (R, JobEvent.FINISH, DONE),
    (R, JobEvent.FAIL, F),
    (R, JobEvent.EXHAUST, DEAD),
    (R, JobEvent.FAIL_TEMPORARILY, F),
    (R, JobEvent.FAIL_PERMANENTLY, DEAD),
    (R, JobEvent.REQUEUE, Q),
    (Q, JobEvent.CANCEL, C),
    (R, JobEvent.CANCEL, C),
    (F, JobEvent.CANCEL, C),
    (DEAD, JobEvent.RETRY, Q),
    (F, JobEvent.RETRY, Q),
    (C, JobEvent.RETRY, Q),
    (DONE, JobEvent.ENQUEUE, Q),
    (C, JobEvent.ENQUEUE, Q),
    (Q, JobEvent.CLAIM, R),
    (F, JobEvent.CLAIM, R),
    (R, JobEvent.RELEASE, Q),
    (R, JobEvent.EXPIRE, Q),
    (R, JobEvent.EXPIRE_LAST, DEAD),
]


@pytest.mark.parametrize("state, event, expected", [pytest.param(*row, id=f"{row[0]}-{row[1]}") for row in LEGAL])
def test_a_legal_transition(state: JobState, event: JobEvent, expected: JobState) -> None:
    assert next_state(state, event) is expected
    assert check(job_id=7, state=state, event=event) is expected


def test_the_table_holds_exactly_the_legal_transitions() -> None:
    assert dict(TRANSITIONS) == {(state, event): to for state, event, to in LEGAL}


ILLEGAL = [
    (DONE, JobEvent.START, "job 7 is done; only a queued or failed job can start"),
    (R, JobEvent.START, "job 7 is running; only a queued or failed job can start"),
    (Q, JobEvent.FINISH, "job 7 is queued; only a running job can finish"),
    (F, JobEvent.FAIL, "job 7 is failed; only a running job can fail"),
    (Q, JobEvent.FAIL_PERMANENTLY, "job 7 is queued; only a running job can fail"),
    (DEAD, JobEvent.FAIL_TEMPORARILY, "job 7 is dead; only a running job can fail"),
    (DONE, JobEvent.CANCEL, "job 7 is done; only a queued, running or failed job can be cancelled"),
    (DEAD, JobEvent.CANCEL, "job 7 is dead; only a queued, running or failed job can be cancelled"),
    (Q, JobEvent.RETRY, "job 7 is queued; only a dead, failed or cancelled job can be retried"),
    (R, JobEvent.RETRY, "job 7 is running; only a dead, failed or cancelled job can be retried"),
    (Q, JobEvent.REQUEUE, "job 7 is queued; only a running job can be requeued"),
    (DEAD, JobEvent.ENQUEUE, "job 7 is dead; only a done or cancelled job can be queued again"),
    (R, JobEvent.ENQUEUE, "job 7 is running; only a done or cancelled job can be queued again"),
    (R, JobEvent.CLAIM, "job 7 is running; only a queued or failed job can be claimed"),
    (Q, JobEvent.RELEASE, "job 7 is queued; only a running job can be released"),
    (DONE, JobEvent.EXPIRE, "job 7 is done; only a running job can expire"),
]


@pytest.mark.parametrize(
    "state, event, message", [pytest.param(*row, id=f"{row[0]}-{row[1]}-refused") for row in ILLEGAL]
)
def test_an_illegal_transition_is_refused_naming_job_state_and_event(
    state: JobState, event: JobEvent, message: str
) -> None:
    assert next_state(state, event) is None
    with pytest.raises(JobStateError, match=message) as refused:
        check(job_id=7, state=state, event=event)
    assert (refused.value.job_id, refused.value.state, refused.value.event) == (7, state, event)


def test_every_pair_outside_the_table_is_illegal() -> None:
    for state in JobState:
        for event in JobEvent:
            assert (next_state(state, event) is not None) == (state in sources(event))


def test_finished_states_leave_only_by_an_operator_or_a_pass() -> None:
    """done, dead and cancelled are ends for the dispatcher: only retry or a new pass moves them."""
    for end in (DONE, DEAD, C):
        assert {event for (state, event) in TRANSITIONS if state is end} <= {JobEvent.RETRY, JobEvent.ENQUEUE}
