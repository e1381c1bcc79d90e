"""Every config key is in examples/config.yaml and can be set from the Ansible role's inventory.

A check, not a generated example: the example says more than the fields' descriptions do
(`${VAR}` defaults, a second library, a commented-out alternative, advice about umask and
groups), and generating it would move all of that into models.py. So these tests walk the
models (each field, and the fields of the models inside: sections, list entries, named
entries) and name each key path that is missing:
- from examples/config.yaml, as a key or a commented-out key (`# key: value` where the key goes);
- from the role: an inventory that sets every key (through the key's own variable, listed in
  the role's vars/main.yml, or else its section's variable `hb2r_<section>`) must render each
  value into the config, and each such variable must be in defaults/main.yml (but for the
  required ones, which have no default).
The role's template is rendered by real ansible-playbook on localhost, as deploy.yml renders
it, after the role's own check of the config variables. The last tests run the same checks on
models that gained a key, and see them fail naming it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
import typing
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, Field

from agent.config import load_config
from agent.config.models import Config, Model, Scan

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "config.yaml"
ROLE = REPO / "playbooks" / "roles" / "hb2r"

KeyPath = tuple[str, ...]
ENTRY = "[]"  # any entry of a list
NAMED = "*"  # any entry of a mapping of names (presets)

# Required by the role (its defaults/main.yml says so), so without a default there.
REQUIRED_VARIABLES = {"hb2r_archive", "hb2r_libraries", "hb2r_presets"}
# The template writes store: for a PostgreSQL URL (with its password_file) or when hb2r_store is set.
SENTINELS = {"store.url": "postgresql://hb2r@db.example/set-store-url"}
HASH = "$2b$12$EjNJyDau5vaz3Rw4eyFU3.CgVEnpVjQQ1gikg1nhkSP/nLG5YgekG"


# --- walking the models ---------------------------------------------------------------------


def key_paths(model: type[BaseModel], prefix: KeyPath = ()) -> list[KeyPath]:
    """Given a model, return the path of each of its keys and of the keys of the models inside it."""
    found: list[KeyPath] = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        found.append(path)
        nested = nested_model(field.annotation)
        if nested is not None:
            markers, inner = nested
            found += key_paths(inner, (*path, *markers))
    return found


def leaf_paths(model: type[BaseModel]) -> list[KeyPath]:
    paths = key_paths(model)
    return [path for path in paths if not any(other[: len(path)] == path != other for other in paths)]


def nested_model(annotation: Any) -> tuple[KeyPath, type[BaseModel]] | None:
    """Given a field's type, return the model inside it and the list/name markers on the way, if any."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return (), annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    inner: tuple[KeyPath, type[BaseModel]] | None = None
    if origin in (tuple, list) and args:
        inner = nested_model(args[0])
        return ((ENTRY, *inner[0]), inner[1]) if inner else None
    if origin is dict and len(args) == 2:
        inner = nested_model(args[1])
        return ((NAMED, *inner[0]), inner[1]) if inner else None
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            inner = nested_model(arg)
            if inner:
                return inner
    return None


def dotted(path: KeyPath) -> str:
    """('libraries', '[]', 'name') -> 'libraries[].name'; ('presets', '*', 'args') -> 'presets.*.args'."""
    text = ""
    for part in path:
        text += part if part == ENTRY or not text else f".{part}"
    return text


def holds(document: Any, path: KeyPath) -> bool:
    """Return whether the document has a key at path (in any entry, for lists and named entries)."""
    if not path:
        return True
    head, rest = path[0], path[1:]
    if head == ENTRY:
        return isinstance(document, list) and any(holds(item, rest) for item in document)
    if head == NAMED:
        return isinstance(document, dict) and any(holds(value, rest) for value in document.values())
    return isinstance(document, dict) and head in document and holds(document[head], rest)


# --- the example ----------------------------------------------------------------------------

_COMMENTED_KEY = re.compile(r"^(\s*)# (\s*(?:- )?[a-z_][a-z0-9_]*:(?:\s.*)?)$")


def example_keys(text: str) -> Any:
    """Return the example's data, its commented-out keys (`# key: value`, `#   - key: value` in a
    list) read as keys."""
    return yaml.safe_load("\n".join(_COMMENTED_KEY.sub(r"\1\2", line) for line in text.splitlines()))


def missing_from_example(model: type[BaseModel], text: str) -> list[str]:
    """Return a message for each key of the model that the example neither sets nor shows commented out."""
    document = example_keys(text)
    return [
        f"{dotted(path)}: not in examples/config.yaml (add it, or `# {path[-1]}: ...` where it goes)"
        for path in key_paths(model)
        if not holds(document, path)
    ]


# --- the role -------------------------------------------------------------------------------


def own_variables() -> dict[KeyPath, str]:
    """Return the config keys that have an inventory variable of their own (the role's vars/main.yml)."""
    listed = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["hb2r_config_keys_with_own_variable"]
    return {(item["section"], item["key"]): item["variable"] for item in listed}


def sentinel(path: KeyPath) -> str:
    return SENTINELS.get(dotted(path), f"set-{dotted(path)}")


def _every_key(model: type[BaseModel], prefix: KeyPath) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        nested = nested_model(field.annotation)
        values[name] = sentinel(path) if nested is None else _entries(nested, path)
    return values


def _entries(nested: tuple[KeyPath, type[BaseModel]], path: KeyPath) -> Any:
    markers, inner = nested
    value: Any = _every_key(inner, (*path, *markers))
    for marker in reversed(markers):
        value = [value] if marker == ENTRY else {"entry": value}
    return value


def inventory_setting_every_key(model: type[BaseModel]) -> dict[str, Any]:
    """Return inventory variables that set every key of the model, each to a value naming its path."""
    own = own_variables()
    variables: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name == "version":
            continue  # always 1: the template writes it
        nested = nested_model(field.annotation)
        if nested is None:
            variables[f"hb2r_{name}"] = sentinel((name,))
        elif nested[0]:
            variables[f"hb2r_{name}"] = _entries(nested, (name,))
        else:
            for key, value in _every_key(nested[1], (name,)).items():
                if (name, key) in own:
                    variables[own[(name, key)]] = value
                else:
                    variables.setdefault(f"hb2r_{name}", {})[key] = value
    return variables


def value_at(document: Any, path: KeyPath) -> Any:
    for part in path:
        key: Any = 0 if part == ENTRY else "entry" if part == NAMED else part
        try:
            document = document[key]
        except (KeyError, IndexError, TypeError):
            return None
    return document


def not_settable_from_the_role(model: type[BaseModel], *, inventory: dict[str, Any], rendered: Any) -> list[str]:
    """Return a message for each variable of the inventory missing from the defaults, and each key not rendered."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    problems = [
        f"{name}: not in playbooks/roles/hb2r/defaults/main.yml"
        for name in inventory
        if name not in defaults and name not in REQUIRED_VARIABLES
    ]
    for path in leaf_paths(model):
        if path == ("version",):
            continue
        value = value_at(rendered, path)
        if value != sentinel(path):
            got = "is not in the rendered config" if value is None else f"renders as {value!r}"
            problems.append(f"{dotted(path)}: the inventory's value {sentinel(path)!r} {got}")
    return problems


def render_role_config(inventories: dict[str, dict[str, Any]], folder: Path) -> dict[str, str]:
    """Render the role's config template once per inventory with ansible-playbook on localhost; return each text.

    The role's check of the config variables runs first, as in deploy.yml's preflight.
    """
    blocks = [
        {
            "name": label,
            "vars": variables,
            "block": [
                {"name": "Check", "ansible.builtin.include_tasks": str(ROLE / "tasks" / "config_variables.yml")},
                {
                    "name": "Render",
                    "ansible.builtin.template": {
                        "src": str(ROLE / "templates" / "config.yaml.j2"),
                        "dest": str(folder / f"{label}.yaml"),
                        "mode": "0600",
                    },
                },
            ],
        }
        for label, variables in inventories.items()
    ]
    play = {
        "name": "Render the config",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars_files": [str(ROLE / "defaults" / "main.yml"), str(ROLE / "vars" / "main.yml")],
        "tasks": blocks,
    }
    playbook = folder / "render.yml"
    playbook.write_text(json.dumps([play]))
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "False"}
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            "localhost,",
            "-e",
            json.dumps({"ansible_python_interpreter": sys.executable}),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"ansible-playbook failed:\n{result.stdout}\n{result.stderr}")
    return {label: (folder / f"{label}.yaml").read_text() for label in inventories}


# --- models that gained a key ---------------------------------------------------------------


class ScanWithJitter(Scan):
    jitter: timedelta = Field(default=timedelta(0), description="A key the example does not know yet.")


class ConfigWithScanJitter(Config):
    scan: ScanWithJitter = Field(default_factory=ScanWithJitter)


class Target(Model):
    url: str = Field(description="Where to send.")
    events: tuple[str, ...] = Field(default=(), description="What to send.")


class ConfigWithTargets(Config):
    targets: tuple[Target, ...] = Field(default=(), description="A section the role does not know yet.")


# --- the inventories and what they render ---------------------------------------------------

# The example inventory's config variables: what an operator who sets none of the new ones has.
PLAIN = {
    "hb2r_archive": "/srv/resilio/media",
    "hb2r_libraries": [
        {"name": "tv", "source": "/srv/media/tv", "output": "TV", "preset": "tv", "stable_after": "60s"},
        {"name": "movies", "source": "/srv/media/movies", "output": "Movies", "preset": "movies"},
    ],
    "hb2r_presets": {
        "tv": {"handbrake": "Fast 1080p30", "container": "mkv"},
        "movies": {"handbrake": "HQ 1080p30 Surround", "container": "mkv"},
    },
    "hb2r_users": [{"name": "admin", "role": "admin", "password_hash": HASH}],
    "hb2r_listen": "127.0.0.1:8080",
    "hb2r_limits": {"cpu_percent": 80, "memory_percent": 80, "max_jobs": "auto", "windows": []},
    "hb2r_host_name": "mediaserver",
}

PLAIN_RENDERED = f"""\
# Ansible managed
# hb2r config rendered from the inventory by playbooks/deploy.yml; see examples/config.yaml.
version: 1
paths:
  archive: /srv/resilio/media
  state_dir: /var/lib/hb2r
libraries:
- name: tv
  source: /srv/media/tv
  output: TV
  preset: tv
  stable_after: 60s
- name: movies
  source: /srv/media/movies
  output: Movies
  preset: movies
presets:
  tv:
    handbrake: Fast 1080p30
    container: mkv
  movies:
    handbrake: HQ 1080p30 Surround
    container: mkv
scan:
  interval: 60s
limits:
  cpu_percent: 80
  memory_percent: 80
  max_jobs: auto
  windows: []
retry: {{}}
server:
  listen: 127.0.0.1:8080
  cors_origins: []
auth:
  jwt_secret_file: /var/lib/hb2r/jwt.secret
users:
- name: admin
  role: admin
  password_hash: {HASH}
host:
  name: mediaserver
"""

STORE_URL = "postgresql://hb2r@db.example:5432/hb2r"
NEW_KEYS = {
    "hb2r_paths": {"archive_mode": "0660", "archive_group": "media"},
    "hb2r_handbrake": {"binary": "/usr/local/bin/HandBrakeCLI", "stall_timeout": "20m"},
    "hb2r_scan": {"full_interval": "2h", "max_vanish_percent": 30},
    "hb2r_server": {"trusted_proxies": ["127.0.0.1"]},
    "hb2r_store": {"lease": "45s", "host_losses": 5},
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    inventories = {
        "plain": PLAIN,
        "plain-postgres": {**PLAIN, "hb2r_store_url": STORE_URL},
        "new-keys": {**PLAIN, **NEW_KEYS},
        "every-key": inventory_setting_every_key(Config),
        "every-key-of-a-new-section": inventory_setting_every_key(ConfigWithTargets),
    }
    yield render_role_config(inventories, tmp_path_factory.mktemp("render"))


# --- the tests ------------------------------------------------------------------------------


def test_every_config_key_is_in_the_example() -> None:
    assert missing_from_example(Config, EXAMPLE.read_text()) == []


def test_every_config_key_can_be_set_from_the_inventory(rendered: dict[str, str]) -> None:
    problems = not_settable_from_the_role(
        Config, inventory=inventory_setting_every_key(Config), rendered=yaml.safe_load(rendered["every-key"])
    )

    assert problems == []


def test_an_inventory_that_sets_none_of_the_new_variables_renders_the_config_as_before(
    rendered: dict[str, str],
) -> None:
    # A changed config file restarts the agent on the next deploy: setting nothing must change nothing.
    assert rendered["plain"] == PLAIN_RENDERED
    assert rendered["plain-postgres"] == PLAIN_RENDERED + (
        f"store:\n  url: {STORE_URL}\n  password_file: /etc/hb2r/db.password\n"
    )


def test_keys_set_from_the_inventory_reach_the_agents_config(rendered: dict[str, str], tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(rendered["new-keys"])

    config = load_config(path, environ={}).config

    assert (config.paths.archive, config.paths.archive_mode, config.paths.archive_group) == (
        Path("/srv/resilio/media"),
        "0660",
        "media",
    )
    assert (config.handbrake.binary, config.handbrake.stall_timeout) == (
        "/usr/local/bin/HandBrakeCLI",
        timedelta(minutes=20),
    )
    assert (config.scan.interval, config.scan.full_interval, config.scan.max_vanish_percent) == (
        timedelta(seconds=60),
        timedelta(hours=2),
        30,
    )
    assert [str(network) for network in config.server.trusted_proxies] == ["127.0.0.1/32"]
    assert (config.store.url, config.store.lease, config.store.host_losses) == ("sqlite", timedelta(seconds=45), 5)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        pytest.param(
            "hb2r_paths", {"archive": "/elsewhere"}, "hb2r_paths sets archive: set hb2r_archive instead", id="archive"
        ),
        pytest.param(
            "hb2r_server",
            {"listen": "0.0.0.0:80", "trusted_proxies": []},
            "hb2r_server sets listen: set hb2r_listen instead",
            id="listen",
        ),
    ],
)
def test_a_section_variable_naming_a_key_with_its_own_variable_is_refused(
    tmp_path: Path, variable: str, value: dict[str, Any], message: str
) -> None:
    with pytest.raises(AssertionError) as failed:
        render_role_config({"twice": {**PLAIN, variable: value}}, tmp_path)

    assert message in str(failed.value)
    assert not (tmp_path / "twice.yaml").exists()


def test_the_example_check_names_a_key_a_model_gains() -> None:
    assert missing_from_example(ConfigWithScanJitter, EXAMPLE.read_text()) == [
        "scan.jitter: not in examples/config.yaml (add it, or `# jitter: ...` where it goes)"
    ]


def test_the_role_check_names_a_section_a_model_gains(rendered: dict[str, str]) -> None:
    problems = not_settable_from_the_role(
        ConfigWithTargets,
        inventory=inventory_setting_every_key(ConfigWithTargets),
        rendered=yaml.safe_load(rendered["every-key-of-a-new-section"]),
    )

    assert problems == [
        "hb2r_targets: not in playbooks/roles/hb2r/defaults/main.yml",
        "targets[].url: the inventory's value 'set-targets[].url' is not in the rendered config",
        "targets[].events: the inventory's value 'set-targets[].events' is not in the rendered config",
    ]
