"""What hb2r tells an operator about, and how each message reads. Pure: no I/O, no clock.

Each event has a kind (the name `notify[].events` lists) and a subject: what the event is
about, for coalescing (`agent.notify.policy`). The subjects are chosen so that a burst of one
problem becomes one message: dead jobs and stalled encodes by their library (a broken preset
kills every job of the library), a paused library by its name, a lost host by its name, the
archive, the queue and a crash restart by their one subject each.

Messages carry no secret: no URL, no password; file paths and reasons as the logs show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EventKind(StrEnum):
    JOB_DEAD = "job_dead"
    LIBRARY_PAUSED = "library_paused"
    LIBRARY_ERROR = "library_error"
    ARCHIVE_LOW_SPACE = "archive_low_space"
    ENCODE_STALLED = "encode_stalled"
    QUEUE_DRAINED = "queue_drained"
    HOST_LOST = "host_lost"
    STARTED_AFTER_CRASH = "started_after_crash"
    TEST = "test"  # `hb2r notify-test` only; not a name `events:` takes


# The kinds `notify[].events` may name, in the order the docs list them.
KNOWN_KINDS: tuple[EventKind, ...] = tuple(kind for kind in EventKind if kind is not EventKind.TEST)
# Apprise's notification types: how a service colours or ranks a message.
INFO, SUCCESS, WARNING, FAILURE = "info", "success", "warning", "failure"


@dataclass(frozen=True)
class Event:
    kind: EventKind
    subject: str
    title: str
    body: str
    severity: str = WARNING


def job_dead(*, job_id: int, library: str, path: str, reason: str, host: str) -> Event:
    return Event(
        EventKind.JOB_DEAD,
        library,
        f"hb2r: job {job_id} is dead ({library})",
        f"{library}/{path} will not be encoded again until an operator retries it (hb2r retry {job_id}).\n"
        f"Reason: {reason}\nHost: {host}",
        FAILURE,
    )


def library_paused(*, library: str, reason: str, host: str) -> Event:
    return Event(
        EventKind.LIBRARY_PAUSED,
        library,
        f"hb2r: library {library} is paused",
        f"No job of {library} starts until this clears.\nReason: {reason}\nHost: {host}",
        WARNING,
    )


def library_error(*, library: str, reason: str, host: str) -> Event:
    return Event(
        EventKind.LIBRARY_ERROR,
        library,
        f"hb2r: library {library} cannot encode",
        f"{library} is in error: no job of it starts until this is fixed.\nReason: {reason}\nHost: {host}",
        FAILURE,
    )


def archive_low_space(*, free: str, minimum: str, archive: str, host: str) -> Event:
    return Event(
        EventKind.ARCHIVE_LOW_SPACE,
        "archive",
        "hb2r: the archive is low on space",
        f"The archive {archive} has {free} free, below limits.min_free_disk {minimum}: no encode starts "
        f"until space is freed.\nHost: {host}",
        WARNING,
    )


def encode_stalled(*, job_id: int, library: str, path: str, seconds: int, percent: float, host: str) -> Event:
    return Event(
        EventKind.ENCODE_STALLED,
        library,
        f"hb2r: encode of job {job_id} stalled ({library})",
        f"{library}/{path}: no progress for {seconds} s at {percent:.1f} %; HandBrakeCLI was stopped and the job "
        f"is retried later (the attempt is not counted).\nHost: {host}",
        WARNING,
    )


def queue_drained(*, encoded_today: int, saved_today: str, dead: int, host: str) -> Event:
    dead_part = f"\n{dead} dead {'job waits' if dead == 1 else 'jobs wait'} for an operator (hb2r jobs --state dead)."
    return Event(
        EventKind.QUEUE_DRAINED,
        "queue",
        "hb2r: the queue is empty",
        f"Every queued job is finished. Today: {encoded_today} {'file' if encoded_today == 1 else 'files'} "
        f"encoded, {saved_today} saved.{dead_part if dead else ''}\nHost: {host}",
        SUCCESS,
    )


def host_lost(*, host: str, job_id: int, library: str, path: str, dead: bool) -> Event:
    then = "it is dead: lost by too many hosts" if dead else "it went back to the queue for another host"
    return Event(
        EventKind.HOST_LOST,
        host,
        f"hb2r: host {host} was lost",
        f"Host {host} stopped renewing the lease of job {job_id} ({library}/{path}): {then}. "
        "Is the host down, frozen or cut off from the database?",
        WARNING,
    )


def started_after_crash(*, host: str, previous: str, requeued: int, settled: int) -> Event:
    return Event(
        EventKind.STARTED_AFTER_CRASH,
        host,
        f"hb2r: agent on {host} restarted after a crash",
        f"The previous agent ({previous}) did not stop cleanly. {requeued} interrupted "
        f"{'job was' if requeued == 1 else 'jobs were'} queued again, {settled} found published and settled.",
        WARNING,
    )


def probe_message(*, host: str, target: str) -> Event:
    return Event(
        EventKind.TEST,
        target,
        "hb2r: test notification",
        f"This is a test from hb2r notify-test on {host}, to {target}. If you read this, the target works.",
        INFO,
    )
