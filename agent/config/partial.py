"""The parts of a config file with mistakes that can still be checked against each other.

`hb2r validate` should list every mistake of a file in one run: a misspelt key must not hide
a library naming an undefined preset until the key is fixed. Those checks relate values of
several sections, so they need typed values, and a file that fails validation gives no
Config. We validate its sections, and each entry of `libraries`, `presets` and `users`, on
their own instead, and hand the checks the parts that pass (`checks.Checkable`).

Why parts and not the raw mapping, nor the broken values replaced by defaults: the checks
compare resolved paths, normalised output folders and parsed durations, which only the
models make; checking raw values would repeat that work, and a default put in for a wrong
value could raise errors about a setting the operator never wrote. So:
- An unknown key is dropped before the parts are validated: nothing reads it, so what is left
  is what the agent would use (and its own message says it is unknown).
- A part holding a wrong value, or a value the reader already complained about (an unset
  `${VAR}`, a bad YAML tag, a duplicate key), is left out; the checks skip what needs it.
  A preset entry left out still counts as defined, so no library is told its preset is missing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent.config.checks import Checkable
from agent.config.errors import Location
from agent.config.models import Auth, Library, Limits, Paths, Preset, Retry, Scan, StoreSettings, User

_Model = TypeVar("_Model", bound=BaseModel)


def checkable_parts(
    data: Mapping[str, Any],
    *,
    unknown_keys: Iterable[Location],
    doubtful: Iterable[Location],
    base_dir: Path,
) -> Checkable:
    """Given a file's values, where its unknown keys are and where values are doubtful, return its valid parts."""
    values = _without(data, unknown_keys)
    doubtful = frozenset(doubtful)
    context = {"base_dir": base_dir}

    def section(name: str, model: type[_Model]) -> _Model | None:
        return _valid(model, values.get(name, {}), loc=(name,), doubtful=doubtful, context=context)

    def entries(name: str, model: type[_Model]) -> tuple[_Model | None, ...] | None:
        raw = values.get(name, [])
        if not isinstance(raw, list) or _holds((name,), doubtful, exactly=True):
            return None
        return tuple(
            _valid(model, item, loc=(name, index), doubtful=doubtful, context=context) for index, item in enumerate(raw)
        )

    presets_raw = values.get("presets", {})
    presets: dict[str, Preset | None] | None = None
    names_are_text = isinstance(presets_raw, dict) and all(isinstance(name, str) for name in presets_raw)
    if names_are_text and not _holds(("presets",), doubtful, exactly=True):
        presets = {
            name: _valid(Preset, raw, loc=("presets", name), doubtful=doubtful, context=context)
            for name, raw in presets_raw.items()
        }
    return Checkable(
        paths=section("paths", Paths),
        libraries=entries("libraries", Library),
        presets=presets,
        scan=section("scan", Scan),
        limits=section("limits", Limits),
        retry=section("retry", Retry),
        auth=section("auth", Auth),
        store=section("store", StoreSettings),
        users=entries("users", User),
    )


def _valid(
    model: type[_Model], raw: Any, *, loc: Location, doubtful: frozenset[Location], context: dict[str, Any]
) -> _Model | None:
    if _holds(loc, doubtful):
        return None
    try:
        return model.model_validate(raw, context=context)
    except ValidationError:
        return None


def _holds(loc: Location, doubtful: frozenset[Location], *, exactly: bool = False) -> bool:
    """Return whether a doubtful value is at loc (exactly) or at loc or below it."""
    if exactly:
        return loc in doubtful
    return any(place[: len(loc)] == loc for place in doubtful)


def _without(data: Mapping[str, Any], keys: Iterable[Location]) -> dict[str, Any]:
    """Return a copy of data with the keys at these locations removed."""
    values = copy.deepcopy(dict(data))
    for loc in keys:
        parent: Any = values
        for part in loc[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        if isinstance(parent, dict):
            parent.pop(loc[-1], None)
    return values
