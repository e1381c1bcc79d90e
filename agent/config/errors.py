"""Config problems as a person reads them: `file:line: at 'key.path': what is wrong`.

Pydantic's messages are turned into ones that name the key and the value and, for an
unknown key, suggest the nearest known one, so a typo is a one-line fix.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any, Union

from pydantic import BaseModel

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    path: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        at = f" at {self.path!r}" if self.path else ""
        return f"{where}:{at}: {self.message}" if at else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config file cannot be used; `problems` says every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


def format_location(loc: Location) -> str:
    """Given ('libraries', 0, 'preset'), return 'libraries[0].preset'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def data_location(pydantic_loc: tuple[str | int, ...]) -> Location:
    """Given a location pydantic reports, return its keys and indexes in the file (without union branch names)."""
    return tuple(part for part in pydantic_loc if _is_data_key(part))


def describe_validation_error(error: Any) -> tuple[Location, str]:
    """Given one item of pydantic's `ValidationError.errors()`, return its location and a plain message."""
    from agent.config.models import Config

    loc = data_location(error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = loc[-1]
        known = _known_keys(Config, loc[:-1])
        meant = likely_meant(loc)
        hint = f"; did you mean {meant!r}?" if meant else (f" (known: {', '.join(sorted(known))})" if known else "")
        return loc, f"unknown key {key!r}{hint}"
    if kind == "missing":
        return loc, "required key is missing"
    if loc == ("version",) and kind == "literal_error":
        return loc, f"this hb2r reads config version 1, got {value!r}"
    if value is None and kind not in ("value_error", "assertion_error"):
        # Pydantic would say "input is not a valid path for <class 'pathlib.Path'>, got None".
        return loc, "has no value (the key is left empty, or its ${VAR} is empty)"
    if kind == "string_pattern_mismatch" and loc:
        # The regular expression means little to most people; the field's description says it in words.
        description = _description(Config, loc)
        if description:
            return loc, f"{value!r} is not a valid {description[0].lower()}{description[1:].rstrip('.')}"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind not in ("value_error",) and _is_plain(value) and repr(value) not in message:
        message = f"{message}, got {value!r}"
    return loc, _lower_first(message)


def likely_meant(loc: Location) -> str | None:
    """Given where an unknown key is, return the known key beside it that it is close to (a misspelling), if any."""
    from agent.config.models import Config

    close = difflib.get_close_matches(str(loc[-1]), _known_keys(Config, loc[:-1]), n=1)
    return close[0] if close else None


def _lower_first(message: str) -> str:
    """'Input should be ...' -> 'input should be ...', but keep 'CORS origin ...' as it is."""
    if message[:1].isupper() and not message[:2].isupper():
        return message[0].lower() + message[1:]
    return message


def _is_data_key(part: str | int) -> bool:
    """Drop the names pydantic gives union branches and validator wrappers from a location."""
    return isinstance(part, int) or not any(mark in part for mark in "[](")


def _is_plain(value: object) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _known_keys(model: type[BaseModel], loc: Location) -> list[str]:
    """Return the field names of the model found by following loc from `model`."""
    annotation: Any = model
    for part in loc:
        annotation = _step(annotation, part)
        if annotation is None:
            return []
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _description(model: type[BaseModel], loc: Location) -> str | None:
    """Return the description of the field found by following loc from `model`, if it has one."""
    parent: Any = model
    for part in loc[:-1]:
        parent = _step(parent, part)
        if parent is None:
            return None
    parent = _unwrap(parent)
    if isinstance(parent, type) and issubclass(parent, BaseModel):
        field = parent.model_fields.get(str(loc[-1]))
        return field.description if field else None
    return None


def _step(annotation: Any, part: str | int) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field else None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is tuple and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        models = [arg for arg in typing.get_args(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
        return models[0] if models else annotation
    return annotation
