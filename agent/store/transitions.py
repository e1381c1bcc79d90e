"""The job state machine, in one table: (state, event) -> next state.

Every function of the store that changes a job's state names its event; the states it may
change from, the SQL guard (`WHERE state IN (...)`) and the refusal an illegal change raises
all come from TRANSITIONS, so the rules live here and nowhere else:

    queued  --start-->      running  --finish-->       done
    failed  --start-->      running  --fail-->         failed   (attempts left; counted)
                            running  --exhaust-->      dead     (the last attempt failed)
                            running  --fail-temporarily--> failed (attempt not counted)
                            running  --fail-permanently--> dead   (retrying cannot help)
                            running  --requeue-->      queued   (agent stopped or crashed)
    queued|running|failed   --cancel-->    cancelled  (operator, engine, superseding content)
    dead|failed|cancelled   --retry-->     queued     (`hb2r retry`, attempts reset)
    done|cancelled          --enqueue-->   queued     (a pass wants that content again)
    queued|failed --claim-->   running  (a host took it under a lease: `agent.store.leases`)
                            running  --release-->      queued   (a per-host problem; no attempt spent)
                            running  --expire-->       queued   (its host stopped renewing the lease)
                            running  --expire-last-->  dead     (lost by more hosts than the cap)

Two guards lie outside the table, because they depend on more than the job's state: a pass
re-queues only an *engine*-cancelled job (an operator's cancel stands), and a retry is
refused while another job for the same file is active. `agent.store.jobs` checks those.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


# The queue: jobs still to run, running, or waiting to be retried (a failed job runs again).
UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.FAILED)


class JobEvent(StrEnum):
    START = "start"
    FINISH = "finish"
    FAIL = "fail"
    EXHAUST = "exhaust"
    FAIL_TEMPORARILY = "fail-temporarily"
    FAIL_PERMANENTLY = "fail-permanently"
    REQUEUE = "requeue"
    CANCEL = "cancel"
    RETRY = "retry"
    ENQUEUE = "enqueue"
    CLAIM = "claim"
    RELEASE = "release"
    EXPIRE = "expire"
    EXPIRE_LAST = "expire-last"

    @property
    def verb(self) -> str:
        """What a job does by this event, as a refusal says it: "only a running job can finish"."""
        return _VERBS[self]


_VERBS = {
    JobEvent.START: "start",
    JobEvent.FINISH: "finish",
    JobEvent.FAIL: "fail",
    JobEvent.EXHAUST: "fail",
    JobEvent.FAIL_TEMPORARILY: "fail",
    JobEvent.FAIL_PERMANENTLY: "fail",
    JobEvent.REQUEUE: "be requeued",
    JobEvent.CANCEL: "be cancelled",
    JobEvent.RETRY: "be retried",
    JobEvent.ENQUEUE: "be queued again",
    JobEvent.CLAIM: "be claimed",
    JobEvent.RELEASE: "be released",
    JobEvent.EXPIRE: "expire",
    JobEvent.EXPIRE_LAST: "expire",
}

_Q, _R, _DONE, _F, _DEAD, _C = (
    JobState.QUEUED,
    JobState.RUNNING,
    JobState.DONE,
    JobState.FAILED,
    JobState.DEAD,
    JobState.CANCELLED,
)

TRANSITIONS: Mapping[tuple[JobState, JobEvent], JobState] = {
    (_Q, JobEvent.START): _R,
    (_F, JobEvent.START): _R,
    (_R, JobEvent.FINISH): _DONE,
    (_R, JobEvent.FAIL): _F,
    (_R, JobEvent.EXHAUST): _DEAD,
    (_R, JobEvent.FAIL_TEMPORARILY): _F,
    (_R, JobEvent.FAIL_PERMANENTLY): _DEAD,
    (_R, JobEvent.REQUEUE): _Q,
    (_Q, JobEvent.CANCEL): _C,
    (_R, JobEvent.CANCEL): _C,
    (_F, JobEvent.CANCEL): _C,
    (_DEAD, JobEvent.RETRY): _Q,
    (_F, JobEvent.RETRY): _Q,
    (_C, JobEvent.RETRY): _Q,
    (_DONE, JobEvent.ENQUEUE): _Q,
    (_C, JobEvent.ENQUEUE): _Q,
    (_Q, JobEvent.CLAIM): _R,
    (_F, JobEvent.CLAIM): _R,
    (_R, JobEvent.RELEASE): _Q,
    (_R, JobEvent.EXPIRE): _Q,
    (_R, JobEvent.EXPIRE_LAST): _DEAD,
}


class JobError(Exception):
    """A job cannot make the asked change; the message says why."""


class JobNotFound(JobError):
    pass


class JobStateError(JobError):
    """The job's state does not allow the event (or it changed meanwhile)."""

    def __init__(self, message: str, *, job_id: int, state: JobState | None = None, event: JobEvent | None = None):
        super().__init__(message)
        self.job_id = job_id
        self.state = state
        self.event = event


def next_state(state: JobState, event: JobEvent) -> JobState | None:
    """Given a job's state and an event, return its next state, or None if the event is illegal there."""
    return TRANSITIONS.get((state, event))


def sources(event: JobEvent) -> tuple[JobState, ...]:
    """Return the states from which event is legal, in the table's order (the order refusals name them)."""
    return tuple(state for (state, legal) in TRANSITIONS if legal is event)


def target(event: JobEvent) -> JobState:
    """Return the state event leads to (the same from every state it is legal in)."""
    (state,) = {TRANSITIONS[(source, event)] for source in sources(event)}
    return state


def sql_states(event: JobEvent) -> str:
    """Return the states event is legal from as an SQL list of literals: `('queued', 'failed')`.

    Built from the enum's constants only, for the guards of the store's UPDATEs.
    """
    return "(" + ", ".join(f"'{state}'" for state in sources(event)) + ")"


def refusal(*, job_id: int, state: JobState, event: JobEvent) -> JobStateError:
    """Return the error for event on a job in state: it names the job, its state and the event."""
    names = [str(allowed) for allowed in sources(event)]
    either = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
    return JobStateError(
        f"job {job_id} is {state}; only a {either} job can {event.verb}", job_id=job_id, state=state, event=event
    )


def check(*, job_id: int, state: JobState, event: JobEvent) -> JobState:
    """Return the state job_id moves to by event from state; raise JobStateError if the table forbids it."""
    moved = next_state(state, event)
    if moved is None:
        raise refusal(job_id=job_id, state=state, event=event)
    return moved


for _event in JobEvent:  # every event has one target: the store's UPDATEs set it as a constant
    target(_event)
