"""The parts of a config file with mistakes that can still be checked against each other.

`hb2r validate` should list every mistake of a file in one run: a misspelt key must not hide
a library naming an undefined preset until the key is fixed. Those checks relate values of
several sections, so they need typed values, and a file that fails validation gives no
Config. We validate its sections, and each entry of `libraries`, `presets` and `users`, on
their own instead, and hand the checks the parts that pass (`checks.Checkable`).

Why parts and not the raw mapping: the checks compare resolved paths, normalised output
folders and parsed durations, which only the models make; checking raw values would repeat
that work. And so that no check reports what the file does not say:
- An unknown key is dropped: nothing reads it. But when it is close to a known key beside it
  (`backof:` for `backoff:`), that key's value is in doubt: the operator meant to set it.
- A wrong value, or one the reader already complained about (an unset `${VAR}`, a bad YAML
  tag, a duplicate key), is in doubt too. It is left out so that the part can still be made;
  where that key has a default, the part is made with it, and the checks skip every key in
  doubt (`Checkable.sure`). A part that cannot be made (a required key in doubt, not a
  mapping) is None and the checks skip what needs it; a preset that cannot be made still
  counts as defined, so no library is told its preset is missing.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from agent.config.checks import Checkable
from agent.config.errors import Location, likely_meant
from agent.config.models import Auth, Library, Limits, Paths, Preset, Retry, Scan, StoreSettings, User

_Model = TypeVar("_Model", bound=BaseModel)


def checkable_parts(
    data: Mapping[str, Any],
    *,
    unknown_keys: Iterable[Location],
    doubtful: Iterable[Location],
    base_dir: Path,
) -> Checkable:
    """Given a file's values, where its unknown keys are and which values are in doubt, return the parts it makes."""
    unknown_keys = list(unknown_keys)
    values = _without(data, unknown_keys)
    meant = [(*loc[:-1], key) for loc in unknown_keys if (key := likely_meant(loc)) is not None]
    in_doubt = frozenset([*doubtful, *meant])
    context = {"base_dir": base_dir}

    def made(model: type[_Model], raw: Any, loc: Location) -> _Model | None:
        if not isinstance(raw, dict) or any(loc[: len(place)] == place for place in in_doubt):
            return None
        keys_in_doubt = {place[len(loc)] for place in in_doubt if len(place) > len(loc) and place[: len(loc)] == loc}
        try:
            return model.model_validate(
                {key: value for key, value in raw.items() if key not in keys_in_doubt}, context=context
            )
        except ValidationError:
            return None

    def entries(name: str, model: type[_Model]) -> tuple[_Model | None, ...] | None:
        raw = values.get(name, [])
        if not isinstance(raw, list) or (name,) in in_doubt:
            return None
        return tuple(made(model, item, (name, index)) for index, item in enumerate(raw))

    presets_raw = values.get("presets", {})
    presets: dict[str, Preset | None] | None = None
    names_are_text = isinstance(presets_raw, dict) and all(isinstance(name, str) for name in presets_raw)
    if names_are_text and ("presets",) not in in_doubt:
        presets = {name: made(Preset, raw, ("presets", name)) for name, raw in presets_raw.items()}
    return Checkable(
        paths=made(Paths, values.get("paths", {}), ("paths",)),
        libraries=entries("libraries", Library),
        presets=presets,
        scan=made(Scan, values.get("scan", {}), ("scan",)),
        limits=made(Limits, values.get("limits", {}), ("limits",)),
        retry=made(Retry, values.get("retry", {}), ("retry",)),
        auth=made(Auth, values.get("auth", {}), ("auth",)),
        store=made(StoreSettings, values.get("store", {}), ("store",)),
        users=entries("users", User),
        doubtful=in_doubt,
    )


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
