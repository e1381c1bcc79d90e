"""Checks that relate several values of a valid Config.

The most important: the archive must not lie inside a watched folder, nor a watched folder
inside the archive or inside another one. Either would make the agent find its own output
and encode it again, forever. Paths are compared after resolving symlinks, since a link is
the usual way such a loop sneaks in. Folders that do not exist are warnings, not errors:
a disk that is not mounted yet must not stop the agent (its library is paused instead).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from agent.config.errors import Location
from agent.config.models import Config
from agent.config.rules import Rule

HIGH_PERCENT = 90


@dataclass
class Found:
    errors: list[tuple[Location, str]] = field(default_factory=list)
    warnings: list[tuple[Location, str]] = field(default_factory=list)


def check(config: Config) -> Found:
    """Given a Config whose values are each valid, return the errors and warnings between them."""
    found = Found()
    _check_libraries(config, found)
    _check_folders(config, found)
    _check_presets(config, found)
    _check_rules(config, found)
    _check_limits(config, found)
    _check_users(config, found)
    return found


def _check_libraries(config: Config, found: Found) -> None:
    if not config.libraries:
        found.warnings.append((("libraries",), "no libraries are configured: there is nothing to do"))
    seen_names: dict[str, int] = {}
    seen_outputs: dict[str, int] = {}
    known = ", ".join(sorted(config.presets)) or "none"
    for index, library in enumerate(config.libraries):
        if library.name in seen_names:
            found.errors.append(
                (
                    (("libraries", index, "name")),
                    f"library name {library.name!r} is already used by libraries[{seen_names[library.name]}]",
                )
            )
        seen_names.setdefault(library.name, index)
        # Resilio may sync to case-insensitive file systems, so 'TV' and 'tv' are one folder there.
        output_key = library.output.casefold()
        if output_key in seen_outputs:
            found.errors.append(
                (
                    ("libraries", index, "output"),
                    f"output folder {library.output!r} is already used by libraries[{seen_outputs[output_key]}]",
                )
            )
        else:
            # 'TV' and 'TV/Kids' mix: source 'Kids/a.mkv' of one lands on 'a.mkv' of the other.
            for other_key, other in seen_outputs.items():
                if output_key.startswith(other_key + "/") or other_key.startswith(output_key + "/"):
                    other_output = config.libraries[other].output
                    message = (
                        f"output folder {library.output!r} overlaps libraries[{other}].output "
                        f"{other_output!r}: their transcodes would mix"
                    )
                    found.errors.append((("libraries", index, "output"), message))
        seen_outputs.setdefault(output_key, index)
        if library.preset not in config.presets:
            found.errors.append(
                (("libraries", index, "preset"), f"preset {library.preset!r} is not defined (known: {known})")
            )


def _check_rules(config: Config, found: Found) -> None:
    """`hdr:` and a rule's `preset:` must name a defined preset; each mistake is named once, where it is written
    (a library's value equal to the top-level one is inherited from there)."""
    known = ", ".join(sorted(config.presets)) or "none"

    def hdr_problem(value: str) -> str | None:
        if value in ("copy", "skip") or value in config.presets:
            return None
        return f"hdr must be copy, skip or a preset's name; preset {value!r} is not defined (known: {known})"

    def rule_problems(rules: tuple[Rule, ...], at: tuple[str | int, ...]) -> None:
        for index, rule in enumerate(rules):
            if rule.preset is not None and rule.preset not in config.presets:
                message = f"rule {rule.name!r}: preset {rule.preset!r} is not defined (known: {known})"
                found.errors.append(((*at, index, "preset"), message))

    if (problem := hdr_problem(config.hdr)) is not None:
        found.errors.append((("hdr",), problem))
    rule_problems(config.rules, ("rules",))
    for index, library in enumerate(config.libraries):
        if library.hdr is not None and library.hdr != config.hdr and (problem := hdr_problem(library.hdr)):
            found.errors.append((("libraries", index, "hdr"), problem))
        if library.rules is not None and library.rules != config.rules:
            rule_problems(library.rules, ("libraries", index, "rules"))


def _check_folders(config: Config, found: Found) -> None:
    archive = _real(config.paths.archive)
    state_dir = _real(config.paths.state_dir)
    sources = [_real(library.source) for library in config.libraries]
    if not config.paths.archive.is_dir():
        found.warnings.append(
            (
                ("paths", "archive"),
                f"archive folder {str(config.paths.archive)!r} does not exist yet; nothing is published until it does",
            )
        )
    if state_dir == archive or _inside(state_dir, archive):
        where = "is the archive itself" if state_dir == archive else "is inside the archive"
        message = f"state_dir {where}: Resilio Sync would share the database"
        found.errors.append((("paths", "state_dir"), message))
    if _inside(_real(config.auth.jwt_secret_file), archive):
        found.errors.append(
            (("auth", "jwt_secret_file"), "jwt_secret_file is inside the archive: Resilio Sync would share the secret")
        )
    password_file = config.store.password_file
    if password_file is not None and _inside(_real(password_file), archive):
        found.errors.append(
            (("store", "password_file"), "password_file is inside the archive: Resilio Sync would share the password")
        )
    for index, (library, source) in enumerate(zip(config.libraries, sources, strict=True)):
        loc: Location = ("libraries", index, "source")
        if source == archive:
            found.errors.append((loc, "source is the archive itself: the agent would encode its own output forever"))
        elif _inside(archive, source):
            found.errors.append(
                (
                    loc,
                    f"the archive {str(config.paths.archive)!r} is inside this source: "
                    "the agent would encode its own output forever",
                )
            )
        elif _inside(source, archive):
            found.errors.append(
                (
                    loc,
                    f"source is inside the archive {str(config.paths.archive)!r}: "
                    "the agent would encode its own output forever",
                )
            )
        for other_index in range(index):
            other = sources[other_index]
            if source == other or _inside(source, other) or _inside(other, source):
                found.errors.append(
                    (loc, f"source overlaps libraries[{other_index}].source: files would be encoded twice")
                )
        reason = "hb2r never writes to watched folders"
        if state_dir == source or _inside(state_dir, source):
            where = "is the source" if state_dir == source else "is inside the source"
            message = f"state_dir {where} of library {library.name!r}: {reason}"
            found.errors.append((("paths", "state_dir"), message))
        if _inside(_real(config.auth.jwt_secret_file), source):
            message = f"jwt_secret_file is inside the source of library {library.name!r}: {reason}"
            found.errors.append((("auth", "jwt_secret_file"), message))
        if not os.path.isdir(source):
            found.warnings.append(
                (
                    loc,
                    f"source folder {str(library.source)!r} does not exist; "
                    f"library {library.name!r} stays paused until it does (not mounted?)",
                )
            )


def _check_presets(config: Config, found: Found) -> None:
    used = {library.preset for library in config.libraries}
    for name, preset in config.presets.items():
        if name not in used:
            found.warnings.append((("presets", name), f"preset {name!r} is not used by any library"))
        if preset.import_file is not None and not os.access(preset.import_file, os.R_OK):
            found.errors.append(
                (("presets", name, "import_file"), f"cannot read preset file {str(preset.import_file)!r}")
            )


def _check_limits(config: Config, found: Found) -> None:
    headroom = "the host may be left with little headroom"
    percents: list[tuple[Location, int, str]] = [
        (("limits", "cpu_percent"), config.limits.cpu_percent, headroom),
        (("limits", "memory_percent"), config.limits.memory_percent, headroom),
        (("scan", "max_vanish_percent"), config.scan.max_vanish_percent, "an unmounted disk may not pause its library"),
    ]
    for loc, value, risk in percents:
        if value > HIGH_PERCENT:
            found.warnings.append((loc, f"{value}% is above {HIGH_PERCENT}%: {risk}"))
    if config.retry.max_backoff < config.retry.backoff:
        found.errors.append((("retry", "max_backoff"), "max_backoff is shorter than backoff"))


def _check_users(config: Config, found: Found) -> None:
    seen: dict[str, int] = {}
    for index, user in enumerate(config.users):
        if user.name in seen:
            found.errors.append(
                (("users", index, "name"), f"user {user.name!r} is already defined by users[{seen[user.name]}]")
            )
        seen.setdefault(user.name, index)


def _real(path: Path) -> str:
    return os.path.realpath(path)


def _inside(path: str, folder: str) -> bool:
    """Return whether path lies strictly below folder."""
    return path != folder and path.startswith(folder.rstrip(os.sep) + os.sep)
