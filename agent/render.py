"""The Plan as text a person reads (grouped by library, one line per action) and as JSON.

A transcode that already has a job is shown as what its job is doing (queued, running,
failed and to be retried, dead or cancelled; see `agent.queued_plan`), with the command
that brings a dead or cancelled one back.

Text shows every name and path through `agent.quoting` (a name with a newline, an escape
sequence or a bidi override is quoted and escaped, on one line) and escapes messages; JSON
carries them exact.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from agent.config.models import Config, Library
from agent.config.units import format_duration
from agent.domain import (
    Action,
    Adopt,
    Copy,
    Drift,
    Observation,
    PauseLibrary,
    Plan,
    RenameOutput,
    Skip,
    Transcode,
    UserChange,
    Wait,
)
from agent.mounts import PickUp
from agent.queued_plan import NEEDS_RETRY, JobView, QueuedPlan, Stage
from agent.quoting import escaped, first_line, shown
from agent.wording import human_size

# count key -> (summary text for one, for more than one); keys and order from agent.queued_plan
_SUMMARY: dict[str, tuple[str, str]] = {
    "transcode": ("{} to transcode", "{} to transcode"),
    "queued": ("{} queued", "{} queued"),
    "running": ("{} running", "{} running"),
    "failed": ("{} to retry", "{} to retry"),
    "dead": ("{} dead", "{} dead"),
    "cancelled": ("{} cancelled", "{} cancelled"),
    "copy": ("{} to copy", "{} to copy"),
    "rename": ("{} to rename", "{} to rename"),
    "adopt": ("{} to adopt", "{} to adopt"),
    "wait": ("{} waiting", "{} waiting"),
    "drift": ("{} drifted", "{} drifted"),
    "skip": ("{} skipped", "{} skipped"),
    "paused": ("{} library paused", "{} libraries paused"),
    "user": ("{} user change", "{} user changes"),
}


def summary(queued: QueuedPlan) -> str:
    """Return e.g. 'Plan: 12 to transcode, 2 queued, 1 dead, 3 waiting, 1 library paused.'"""
    return summary_of(queued.counts())


def summary_of(counts: Mapping[str, int]) -> str:
    """Return the summary line of these counts (`QueuedPlan.counts`, summed over a plan's parts)."""
    parts = []
    for key, count in counts.items():
        if count:
            one, many = _SUMMARY[key]
            parts.append((one if count == 1 else many).format(count))
    if not parts:
        return "Plan: in sync, nothing to do."
    return f"Plan: {', '.join(parts)}."


def render_text(
    queued: QueuedPlan, config: Config, observation: Observation, *, watch: Mapping[str, PickUp] | None = None
) -> str:
    """Return the plan as readable lines, grouped by library, ending with the summary; with
    `watch`, each library says how it notices new files (inotify events, or polling and why)."""
    return "\n".join(_text_lines(queued, config, observation, watch or {})) + "\n"


def watch_line(pick_up: PickUp, config: Config) -> str:
    """Return the line saying how a library notices new files."""
    if pick_up.mode == "events":
        return "  watch: inotify events (new files are seen as they arrive)"
    return f"  watch: polling every {format_duration(config.scan.interval)} ({escaped(pick_up.reason or '')})"


def _text_lines(
    queued: QueuedPlan, config: Config, observation: Observation, watch: Mapping[str, PickUp]
) -> Iterator[str]:
    by_library: dict[str, list[Action]] = {library.name: [] for library in config.libraries}
    user_changes: list[UserChange] = []
    for action in queued.plan.actions:
        if isinstance(action, UserChange):
            user_changes.append(action)
        else:
            by_library[action.library].append(action)
    for library in config.libraries:
        actions = by_library[library.name]
        pick_up = watch.get(library.name)
        if actions and isinstance(actions[0], PauseLibrary):  # a paused library has no other action
            yield from paused_lines(library, actions[0].reason, pick_up, config)
            continue
        observed = observation.libraries.get(library.name)
        yield from heading_lines(library, config, files=len(observed.files) if observed else 0,
                                 in_sync=not actions, pick_up=pick_up)  # fmt: skip
        yield from action_lines(QueuedPlan(Plan(tuple(actions)), queued.jobs), attempts_allowed=config.retry.attempts)
    yield from user_lines(user_changes)
    yield summary(queued)


def paused_lines(library: Library, reason: str, pick_up: PickUp | None, config: Config) -> Iterator[str]:
    """Return the lines of a paused library."""
    yield f"{shown(library.name)}: PAUSED, {escaped(reason)}"
    if pick_up is not None:
        yield watch_line(pick_up, config)


def heading_lines(
    library: Library, config: Config, *, files: int, in_sync: bool, pick_up: PickUp | None
) -> Iterator[str]:
    """Return a library's heading (with how many files its walk found) and its watch line."""
    counted = f"{files} file" if files == 1 else f"{files} files"
    target = shown(f"{config.paths.archive}/{library.output}")
    heading = f"{shown(library.name)} ({shown(str(library.source))} -> {target}, {counted})"
    yield f"{heading}: in sync" if in_sync else heading
    if pick_up is not None:
        yield watch_line(pick_up, config)


def action_lines(
    queued: QueuedPlan, *, attempts_allowed: int, savings: Mapping[str, int] | None = None
) -> Iterator[str]:
    """Return the lines of a library's actions (or some of them, in order); a transcode with an
    estimated saving in `savings` (by path, `agent.saving_estimate`) says it."""
    for action in queued.plan.actions:
        if isinstance(action, Transcode):
            saving = (savings or {}).get(action.source.rel_path)
            yield _transcode_line(action, queued, attempts_allowed=attempts_allowed, saving=saving)
        else:
            yield _line(action)


def user_lines(user_changes: Sequence[UserChange]) -> Iterator[str]:
    """Return the lines of the changes to users (none if there are none)."""
    if user_changes:
        yield "users"
        for change in user_changes:
            mark = {"add": "+", "update": "~", "remove": "-"}[change.change]
            yield f"  {mark} {change.change:<9} {shown(change.name)} ({change.role})"


def _transcode_line(action: Transcode, queued: QueuedPlan, *, attempts_allowed: int, saving: int | None) -> str:
    """Return the line of a transcode: to be queued, or what its job is doing (and its estimated saving)."""
    paths = f"{shown(action.source.rel_path)} -> {shown(action.output_path)}"
    job = queued.job_of(action)
    stage = Stage.TO_QUEUE if job is None else queued.stage_of(action)
    to_encode = stage not in (Stage.DEAD, Stage.CANCELLED)
    estimate = f"; est. saving {human_size(saving)}" if saving is not None and to_encode else ""
    why = f"{action.reason}{_why(action)}{estimate}"
    if job is None or stage is Stage.TO_QUEUE:  # the usual case: no job yet
        return f"  + transcode {paths} ({why})"
    error = first_line(job.error)
    because = f": {error}" if error else ""
    match stage:
        case Stage.QUEUED:
            return f"  + queued    {paths} ({why}; job {job.id})"
        case Stage.RUNNING:
            done = "" if job.progress is None else f", {job.progress:.1f}%"
            return f"  * running   {paths} ({why}; job {job.id}{done})"
        case Stage.FAILED:
            when = "" if job.not_before is None else f"; next try after {_utc(job.not_before)}"
            attempt = f"attempt {job.attempts} of {attempts_allowed}"
            return f"  ? failed    {paths} ({why}; job {job.id} failed ({attempt}){because}{when})"
        case Stage.DEAD:
            failures = "1 failed attempt" if job.attempts == 1 else f"{job.attempts} failed attempts"
            again = f"to try again: {retry_command(job.id)}"
            return f"  x dead      {paths} ({why}; job {job.id} dead after {failures}{because}; {again})"
        case _:
            again = f"to encode it: {retry_command(job.id)}"
            return f"  x cancelled {paths} ({why}; job {job.id} was cancelled; {again})"


def _why(action: Transcode) -> str:
    """Return what a transcode's line adds when a rule or `hdr:` decided it: why, and the preset named."""
    why = f"; {escaped(action.why)}" if action.why else ""
    return why + (f"; preset {shown(action.preset)}" if action.preset else "")


def retry_command(job_id: int) -> str:
    """Return the command that queues a dead or cancelled job again."""
    return f"hb2r retry {job_id}"


def _utc(stamp: str) -> str:
    return f"{datetime.fromisoformat(stamp).astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"


def _line(action: Action) -> str:
    """Return one indented line for an action of a library (not a transcode)."""
    match action:
        case RenameOutput():
            moved = f"{shown(action.from_output_path)} -> {shown(action.output_path)}"
            return f"  > rename    {moved} (source now {shown(action.source.rel_path)})"
        case Adopt():
            reason = f"{shown(action.output_path)} already exists; recorded, not re-encoded"
            return f"  = adopt     {shown(action.source.rel_path)} ({reason})"
        case Copy():
            return (
                f"  = copy      {shown(action.source.rel_path)} -> {shown(action.output_path)} ({escaped(action.why)})"
            )
        case Wait():
            stable_in = _seconds(action.stable_in_seconds)
            return f"  . wait      {shown(action.rel_path)} (changed recently; stable in {stable_in})"
        case Drift():
            kept = shown(action.output_path)
            return f"  ~ drift     {shown(action.rel_path)} ({action.reason}; output kept: {kept})"
        case Skip():
            return f"  ! skip      {shown(action.rel_path)} ({escaped(action.reason)})"
        case _:
            return f"  {action}"


def _seconds(value: float) -> str:
    seconds = max(1, int(value + 0.999))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def to_json(queued: QueuedPlan) -> dict[str, Any]:
    """Return the plan as JSON-ready data: pending, summary counts and one object per action;
    a transcode carries its job (null if it has none yet)."""
    return {
        "pending": queued.pending,
        "summary": queued.counts(),
        "actions": [action_json(action, queued) for action in queued.plan.actions],
    }


def _job_json(job: JobView | None, stage: Stage) -> dict[str, Any] | None:
    if job is None or stage is Stage.TO_QUEUE:
        return None
    data: dict[str, Any] = {
        "id": job.id,
        "state": str(job.state),
        "attempts": job.attempts,
        "error": job.error,
        "not_before": job.not_before,
        "progress": job.progress,
    }
    if stage in NEEDS_RETRY:
        data["retry"] = retry_command(job.id)
    return data


def action_json(action: Action, queued: QueuedPlan) -> dict[str, Any]:
    """Return one action as JSON-ready data (a transcode with its job, if it has one)."""
    data: dict[str, Any] = {"kind": action.kind}
    match action:
        case UserChange():
            data.update(change=str(action.change), name=action.name, role=action.role)
        case PauseLibrary():
            data.update(library=action.library, reason=action.reason)
        case Transcode() | Copy() | RenameOutput() | Adopt():
            data.update(
                library=action.library,
                path=action.source.rel_path,
                size=action.source.size,
                output=action.output_path,
            )
            if isinstance(action, Copy):
                data.update(why=action.why, rule=action.rule)
            if isinstance(action, Transcode):
                data["reason"] = str(action.reason)
                if action.why:
                    data.update(why=action.why, preset=action.preset)
                data["job"] = _job_json(queued.job_of(action), queued.stage_of(action))
            if isinstance(action, RenameOutput):
                data.update(from_path=action.from_rel_path, from_output=action.from_output_path)
        case Wait():
            data.update(
                library=action.library, path=action.rel_path, stable_in_seconds=round(action.stable_in_seconds, 3)
            )
        case Drift():
            data.update(
                library=action.library, path=action.rel_path, output=action.output_path, reason=str(action.reason)
            )
        case Skip():
            data.update(library=action.library, path=action.rel_path, reason=action.reason)
    return data
