"""The Plan as text a person reads (grouped by library, one line per action) and as JSON.

Text shows every name and path through `agent.quoting` (a name with a newline, an escape
sequence or a bidi override is quoted and escaped, on one line) and escapes messages; JSON
carries them exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from agent.config.models import Config
from agent.domain import (
    Action,
    Adopt,
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
from agent.quoting import escaped, shown

# (action type, JSON key, summary text, summary text for more than one)
_SUMMARY: tuple[tuple[type, str, str, str], ...] = (
    (Transcode, "transcode", "{} to transcode", "{} to transcode"),
    (RenameOutput, "rename", "{} to rename", "{} to rename"),
    (Adopt, "adopt", "{} to adopt", "{} to adopt"),
    (Wait, "wait", "{} waiting", "{} waiting"),
    (Drift, "drift", "{} drifted", "{} drifted"),
    (Skip, "skip", "{} skipped", "{} skipped"),
    (PauseLibrary, "paused", "{} library paused", "{} libraries paused"),
    (UserChange, "user", "{} user change", "{} user changes"),
)


def summary(plan: Plan) -> str:
    """Return e.g. 'Plan: 12 to transcode, 1 to rename, 3 waiting, 1 library paused.'"""
    parts = []
    for action_type, _, one, many in _SUMMARY:
        count = plan.count(action_type)
        if count:
            parts.append((one if count == 1 else many).format(count))
    if not parts:
        return "Plan: in sync, nothing to do."
    return f"Plan: {', '.join(parts)}."


def render_text(plan: Plan, config: Config, observation: Observation) -> str:
    """Return the plan as readable lines, grouped by library, ending with the summary."""
    return "\n".join(_text_lines(plan, config, observation)) + "\n"


def _text_lines(plan: Plan, config: Config, observation: Observation) -> Iterator[str]:
    by_library: dict[str, list[Action]] = {library.name: [] for library in config.libraries}
    user_changes: list[UserChange] = []
    for action in plan.actions:
        if isinstance(action, UserChange):
            user_changes.append(action)
        else:
            by_library[action.library].append(action)
    for library in config.libraries:
        actions = by_library[library.name]
        if actions and isinstance(actions[0], PauseLibrary):  # a paused library has no other action
            yield f"{shown(library.name)}: PAUSED, {escaped(actions[0].reason)}"
            continue
        observed = observation.libraries.get(library.name)
        files = len(observed.files) if observed else 0
        counted = f"{files} file" if files == 1 else f"{files} files"
        target = shown(f"{config.paths.archive}/{library.output}")
        heading = f"{shown(library.name)} ({shown(str(library.source))} -> {target}, {counted})"
        if not actions:
            yield f"{heading}: in sync"
            continue
        yield heading
        yield from map(_line, actions)
    if user_changes:
        yield "users"
        for change in user_changes:
            mark = {"add": "+", "update": "~", "remove": "-"}[change.change]
            yield f"  {mark} {change.change:<9} {shown(change.name)} ({change.role})"
    yield summary(plan)


def _line(action: Action) -> str:
    """Return one indented line for an action of a library."""
    match action:
        case Transcode():
            return f"  + transcode {shown(action.source.rel_path)} -> {shown(action.output_path)} ({action.reason})"
        case RenameOutput():
            moved = f"{shown(action.from_output_path)} -> {shown(action.output_path)}"
            return f"  > rename    {moved} (source now {shown(action.source.rel_path)})"
        case Adopt():
            reason = f"{shown(action.output_path)} already exists; recorded, not re-encoded"
            return f"  = adopt     {shown(action.source.rel_path)} ({reason})"
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


def to_json(plan: Plan) -> dict[str, Any]:
    """Return the plan as JSON-ready data: pending, summary counts and one object per action."""
    return {
        "pending": plan.pending,
        "summary": {key: plan.count(action_type) for action_type, key, _, _ in _SUMMARY},
        "actions": [_action_json(action) for action in plan.actions],
    }


def _action_json(action: Action) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": action.kind}
    match action:
        case UserChange():
            data.update(change=str(action.change), name=action.name, role=action.role)
        case PauseLibrary():
            data.update(library=action.library, reason=action.reason)
        case Transcode() | RenameOutput() | Adopt():
            data.update(
                library=action.library,
                path=action.source.rel_path,
                size=action.source.size,
                output=action.output_path,
            )
            if isinstance(action, Transcode):
                data["reason"] = str(action.reason)
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
