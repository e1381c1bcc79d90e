"""A library's condition, as the status API and page show it, decided from facts passed in.

Like a Kubernetes condition: one word, a reason a person can act on, and since when.
- Error: it cannot encode at all (HandBrake lacks its preset, HandBrakeCLI is missing), or
  cannot publish (its output folder is another mount than the archive's temp folder).
- Paused: the planner paused it (source missing, files vanished: is the disk mounted?) or an
  operator did; its queue is kept.
- Progressing: files are waiting to be stable, queued, running or waiting to be retried.
- Ready: every stable file has its transcode (dead jobs are counted, not a condition: they
  wait for an operator and the library is otherwise done).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

READY = "Ready"
PROGRESSING = "Progressing"
PAUSED = "Paused"
ERROR = "Error"


@dataclass(frozen=True)
class Condition:
    status: str
    reason: str
    since: datetime


def library_condition(
    *,
    broken: str | None,
    paused: str | None,
    held: str | None,
    held_since: datetime | None = None,
    counts: Mapping[str, int],
    waiting: int,
    scanned: bool,
    previous: Condition | None,
    now: datetime,
) -> Condition:
    """Given what is known of a library, return its condition; `since` is kept from previous
    when the status and reason have not changed, and is held_since for an operator's pause."""
    running, queued, retrying = counts.get("running", 0), counts.get("queued", 0), counts.get("failed", 0)
    if broken:
        status, reason = ERROR, broken
    elif paused:
        status, reason = PAUSED, paused
    elif held:
        status, reason = PAUSED, held
    elif not scanned:
        status, reason = PROGRESSING, "waiting for the first scan"
    elif running or queued or retrying or waiting:
        parts = [
            f"{count} {label}"
            for count, label in (
                (running, "running"),
                (queued, "queued"),
                (retrying, "waiting to retry"),
                (waiting, "waiting to be stable"),
            )
            if count
        ]
        status, reason = PROGRESSING, ", ".join(parts)
    else:
        status, reason = READY, "every stable file has its transcode"
    if previous is not None and previous.status == status and _same_reason(status, previous.reason, reason):
        return Condition(status, reason, previous.since)
    if held_since is not None and status == PAUSED and reason == held:
        return Condition(status, reason, held_since)  # the operator's pause, also across restarts
    return Condition(status, reason, now)


def _same_reason(status: str, before: str, after: str) -> bool:
    # Progressing stays "since" the moment work began, while its counts move.
    return status == PROGRESSING or before == after
