"""Read the one YAML file into a Config, or explain every mistake in it at once.

The YAML is composed into nodes (not loaded straight to Python) so that each value keeps
its line: errors read `config.yaml:12: at 'libraries[0].preset': ...`. Building the values
from the nodes ourselves also lets us expand `${VAR}` / `${VAR:-default}` in scalars
before validation, refuse duplicate keys, and stop an alias "billion laughs" bomb early
by counting the values we build.

Mistakes in the shape of the file (unknown keys, wrong values, what the reader refuses) and
mistakes between values (an undefined preset, nested folders) are reported together: the
checks between values run on the parts of the file that are valid (see `partial.py`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from agent.config import checks
from agent.config.errors import ConfigError, Location, Problem, data_location, format_location
from agent.config.models import Config
from agent.config.partial import checkable_parts

MAX_CONFIG_BYTES = 1024 * 1024
MAX_VALUES = 20_000

# `${VAR}`, `${VAR:-default}` (default also when VAR is empty, as in the shell); `$${` is a literal `${`.
_VARIABLE = re.compile(r"\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Loaded:
    config: Config
    warnings: tuple[Problem, ...]


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Return `$HB2R_CONFIG` if set, else `/etc/hb2r/config.yaml`."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("HB2R_CONFIG") or "/etc/hb2r/config.yaml")


def load_config(path: Path, *, environ: Mapping[str, str] | None = None) -> Loaded:
    """Given a config file path, return the validated Config and its warnings.

    Raise ConfigError listing every problem found (file, line, key path, message).
    """
    environ = os.environ if environ is None else environ
    name = str(path)
    text = _read_text(path, name)
    document = _Document(name, text, environ)
    data = document.build()
    base_dir = path.parent.absolute()
    config: Config | None = None
    shape_errors: list[ErrorDetails] = []
    try:
        config = Config.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as error:
        shape_errors = error.errors()
    if config is None or document.problems:
        raise ConfigError(_every_problem(document, data, shape_errors=shape_errors, base_dir=base_dir))
    found = checks.check(checks.Checkable.of(config))
    errors = [document.problem_at(loc, message) for loc, message in found.errors]
    if errors:
        raise ConfigError(errors)
    warnings = tuple(document.problem_at(loc, message) for loc, message in found.warnings)
    return Loaded(config=config, warnings=warnings)


def _every_problem(
    document: _Document, data: dict[str, Any], *, shape_errors: list[ErrorDetails], base_dir: Path
) -> list[Problem]:
    """Return the reader's problems, the models', then the errors between the values of the parts that are valid.

    (Warnings wait for a file without errors.)
    """
    found_early = {problem.path for problem in document.problems}
    from_models = [document.problem_from(item) for item in shape_errors]
    unknown_keys = [data_location(item["loc"]) for item in shape_errors if item["type"] == "extra_forbidden"]
    wrong = [data_location(item["loc"]) for item in shape_errors if item["type"] != "extra_forbidden"]
    parts = checkable_parts(data, unknown_keys=unknown_keys, doubtful=[*document.doubtful, *wrong], base_dir=base_dir)
    between = [document.problem_at(loc, message) for loc, message in checks.check(parts).errors]
    return document.problems + [problem for problem in from_models if problem.path not in found_early] + between


def _read_text(path: Path, name: str) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([Problem(name, None, None, "no such file (see examples/config.yaml)")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(name, None, None, "is a folder, not a config file")]) from None
    except OSError as error:
        raise ConfigError([Problem(name, None, None, f"cannot read: {error.strerror}")]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([Problem(name, None, None, "larger than 1 MiB; is this the config file?")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        message = f"not UTF-8 text (byte {error.start}); save the file as UTF-8"
        raise ConfigError([Problem(name, line, None, message)]) from None
    if not text.strip() or all(line.lstrip().startswith("#") or not line.strip() for line in text.splitlines()):
        raise ConfigError([Problem(name, None, None, "the file is empty (see examples/config.yaml)")])
    return text


class _Document:
    """One config file's node tree, the lines of its keys, and the values built from it."""

    def __init__(self, name: str, text: str, environ: Mapping[str, str]) -> None:
        self.name = name
        self.environ = environ
        self.lines: dict[Location, int] = {(): 1}
        self.problems: list[Problem] = []
        self.doubtful: list[Location] = []  # where the values built are not what the file meant
        self._built = 0
        self._own_keys: dict[int, set[int]] = {}
        self._loader = yaml.SafeLoader(text)
        try:
            self._root = self._loader.get_single_node()
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark else None
            message = f"not valid YAML: {_yaml_problem(error, text)}"
            raise ConfigError([Problem(name, line, None, message)]) from None
        except yaml.YAMLError as error:
            raise ConfigError([Problem(name, None, None, f"not valid YAML: {error}")]) from None
        finally:
            self._loader.dispose()

    def build(self) -> dict[str, Any]:
        root = self._root
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            line = root.start_mark.line + 1 if root is not None else 1
            raise ConfigError(
                [
                    Problem(
                        self.name,
                        line,
                        None,
                        f"the top level must be a mapping of keys (version, paths, libraries, ...), got {kind}",
                    )
                ]
            )
        data = self._value(root, ())
        assert isinstance(data, dict)  # noqa: S101 - a mapping node builds a dict
        return data

    def _value(self, node: yaml.Node, loc: Location) -> Any:
        self._built += 1
        if self._built > MAX_VALUES:
            raise ConfigError(
                [
                    Problem(
                        self.name,
                        node.start_mark.line + 1,
                        format_location(loc) or None,
                        f"more than {MAX_VALUES} values after expanding anchors and aliases; refusing a YAML bomb",
                    )
                ]
            )
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, loc)
        if isinstance(node, yaml.SequenceNode):
            result = []
            for index, item in enumerate(node.value):
                self.lines.setdefault((*loc, index), item.start_mark.line + 1)
                result.append(self._value(item, (*loc, index)))
            return result
        assert isinstance(node, yaml.ScalarNode)  # noqa: S101 - the only other kind of node
        return self._scalar(node, loc)

    def _mapping(self, node: yaml.MappingNode, loc: Location) -> dict[str, Any]:
        # The node's own keys, noted before `flatten_mapping` (which edits the node in
        # place) puts the keys merged in by `<<` first: an own key may override those.
        own = self._own_keys.setdefault(
            id(node), {id(key) for key, _ in node.value if key.tag != "tag:yaml.org,2002:merge"}
        )
        self._loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        result: dict[str, Any] = {}
        merged: set[str] = set()
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    Problem(self.name, line, format_location(loc) or None, "a key must be a plain name")
                )
                continue
            key = key_node.value
            if key in result and key not in merged:
                self.doubtful.append((*loc, key))
                self.problems.append(
                    Problem(
                        self.name,
                        line,
                        format_location((*loc, key)),
                        f"duplicate key {key!r} (first on line {self.lines[(*loc, key)]})",
                    )
                )
                continue
            if id(key_node) in own:
                merged.discard(key)
            else:
                merged.add(key)
            self.lines[(*loc, key)] = line
            result[key] = self._value(value_node, (*loc, key))
        return result

    def _scalar(self, node: yaml.ScalarNode, loc: Location) -> Any:
        if node.tag == "tag:yaml.org,2002:str" and "${" in node.value:
            expanded = self._expand(node.value, loc, node.start_mark.line + 1)
            if node.style is not None:  # quoted: stays a string
                return expanded
            resolve: Any = self._loader.resolve  # untyped in types-PyYAML
            tag = resolve(yaml.ScalarNode, expanded, (True, False))
            node = yaml.ScalarNode(tag, expanded, node.start_mark, node.end_mark)
        try:
            return self._loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as error:
            message = f"bad value: {error.problem}"
        except Exception:  # PyYAML raises ValueError, KeyError, ... for `!!int abc`
            message = f"bad value: {node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}"
        line = node.start_mark.line + 1
        self.doubtful.append(loc)
        self.problems.append(Problem(self.name, line, format_location(loc), message))
        return None

    def _expand(self, text: str, loc: Location, line: int) -> str:
        def replace(match: re.Match[str]) -> str:
            escaped, variable, default = match.groups()
            if escaped:
                return match.group(0)[1:]
            value = self.environ.get(variable)
            if value:
                return value
            if default is not None:
                return default
            if value is None:
                self.doubtful.append(loc)
                self.problems.append(
                    Problem(
                        self.name,
                        line,
                        format_location(loc),
                        f"environment variable {variable} is not set and has no default (write ${{{variable}:-value}})",
                    )
                )
            return ""

        return _VARIABLE.sub(replace, text)

    def line_of(self, loc: Location) -> int:
        while loc not in self.lines:
            loc = loc[:-1]
        return self.lines[loc]

    def problem_at(self, loc: Location, message: str) -> Problem:
        return Problem(self.name, self.line_of(loc), format_location(loc) or None, message)

    def problem_from(self, error: Any) -> Problem:
        from agent.config.errors import describe_validation_error

        loc, message = describe_validation_error(error)
        return self.problem_at(loc, message)


def _yaml_problem(error: yaml.MarkedYAMLError, text: str) -> str:
    """Given a YAML syntax error, return PyYAML's context and problem as one line, with a hint."""
    problem = error.problem or str(error)
    context_mark, problem_mark = error.context_mark, error.problem_mark
    if error.context:
        where = ""
        if context_mark and problem_mark and context_mark.line != problem_mark.line:
            where = f" (from line {context_mark.line + 1})"
        problem = f"{error.context}{where}, {problem}"
    if problem_mark and "flow" in (error.context or ""):
        lines = text.splitlines()
        if problem_mark.line < len(lines) and "${" in lines[problem_mark.line]:
            problem += '; inside { } or [ ], a value with ${VAR} must be quoted, like "${VAR:-80}"'
    return problem
