"""Checks that relate several values of a config.

The most important: the archive must not lie inside a watched folder, nor a watched folder
inside the archive or inside another one. Either would make the agent find its own output
and encode it again, forever. Paths are compared after resolving symlinks, since a link is
the usual way such a loop sneaks in. Folders that do not exist are warnings, not errors:
a disk that is not mounted yet must not stop the agent (its library is paused instead).

The checks look at a `Checkable`, not a Config, so that they also run on a file whose shape
is wrong somewhere (see `partial.py`): each check uses only the parts that are there and the
values not in doubt, and skips what needs another, rather than guess what a wrong value meant.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.config.errors import Location
from agent.config.models import Auth, Config, Library, Limits, Paths, Preset, Retry, Scan, StoreSettings, User
from agent.config.rules import Rule

HIGH_PERCENT = 90


@dataclass
class Found:
    errors: list[tuple[Location, str]] = field(default_factory=list)
    warnings: list[tuple[Location, str]] = field(default_factory=list)


@dataclass(frozen=True)
class Checkable:
    """The parts of a config that the checks relate, each valid on its own.

    From a valid Config every part is there and no value is in doubt. From a file with
    mistakes, a section that cannot be made is None, and so is such an entry of `libraries`,
    `presets` or `users` (kept in its place, so that indexes in messages stay true; a preset's
    name still counts as defined). A part made with a default in place of a wrong value, or of
    a value written under a misspelt key, lists that key in `doubtful`: checks leave it alone.
    """

    paths: Paths | None
    libraries: tuple[Library | None, ...] | None
    presets: Mapping[str, Preset | None] | None
    scan: Scan | None
    limits: Limits | None
    retry: Retry | None
    auth: Auth | None
    store: StoreSettings | None
    users: tuple[User | None, ...] | None
    doubtful: frozenset[Location] = frozenset()
    rules: tuple[Rule, ...] | None = None  # the top-level defaults of media-aware rules
    hdr: str | None = None

    def sure(self, loc: Location) -> bool:
        """Return whether the value at loc is what the file says (no doubt at it, above it or below it)."""
        return not any(loc[: len(place)] == place or place[: len(loc)] == loc for place in self.doubtful)

    @classmethod
    def of(cls, config: Config) -> Checkable:
        """Given a valid Config, return all of its parts."""
        return cls(
            paths=config.paths,
            libraries=config.libraries,
            presets=config.presets,
            scan=config.scan,
            limits=config.limits,
            retry=config.retry,
            auth=config.auth,
            store=config.store,
            users=config.users,
            rules=config.rules,
            hdr=config.hdr,
        )


def check(parts: Checkable) -> Found:
    """Given the valid parts of a config, return the errors and warnings between them."""
    found = Found()
    _check_libraries(parts, found)
    _check_folders(parts, found)
    _check_presets(parts, found)
    _check_rules(parts, found)
    _check_limits(parts, found)
    _check_users(parts, found)
    return found


def _valid_entries(entries: tuple[Library | None, ...] | None) -> list[tuple[int, Library]]:
    return [(index, library) for index, library in enumerate(entries or ()) if library is not None]


def _check_libraries(parts: Checkable, found: Found) -> None:
    if parts.libraries == ():
        found.warnings.append((("libraries",), "no libraries are configured: there is nothing to do"))
    seen_names: dict[str, int] = {}
    seen_outputs: dict[str, tuple[int, str]] = {}
    presets = parts.presets
    known = ", ".join(sorted(presets or ())) or "none"
    for index, library in _valid_entries(parts.libraries):
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
                    f"output folder {library.output!r} is already used by libraries[{seen_outputs[output_key][0]}]",
                )
            )
        else:
            # 'TV' and 'TV/Kids' mix: source 'Kids/a.mkv' of one lands on 'a.mkv' of the other.
            for other_key, (other, other_output) in seen_outputs.items():
                if output_key.startswith(other_key + "/") or other_key.startswith(output_key + "/"):
                    message = (
                        f"output folder {library.output!r} overlaps libraries[{other}].output "
                        f"{other_output!r}: their transcodes would mix"
                    )
                    found.errors.append((("libraries", index, "output"), message))
        seen_outputs.setdefault(output_key, (index, library.output))
        if presets is not None and library.preset not in presets:
            found.errors.append(
                (("libraries", index, "preset"), f"preset {library.preset!r} is not defined (known: {known})")
            )


def _check_rules(parts: Checkable, found: Found) -> None:
    """`hdr:` and a rule's `preset:` must name a defined preset; each mistake is named once, where it is written
    (a library's value equal to the top-level one is inherited from there)."""
    presets = parts.presets
    if presets is None:
        return
    known = ", ".join(sorted(presets)) or "none"

    def hdr_problem(value: str) -> str | None:
        if value in ("copy", "skip") or value in presets:
            return None
        return f"hdr must be copy, skip or a preset's name; preset {value!r} is not defined (known: {known})"

    def rule_problems(rules: tuple[Rule, ...], at: tuple[str | int, ...]) -> None:
        for index, rule in enumerate(rules):
            if rule.preset is not None and rule.preset not in presets:
                message = f"rule {rule.name!r}: preset {rule.preset!r} is not defined (known: {known})"
                found.errors.append(((*at, index, "preset"), message))

    if parts.hdr is not None and (problem := hdr_problem(parts.hdr)) is not None:
        found.errors.append((("hdr",), problem))
    if parts.rules is not None:
        rule_problems(parts.rules, ("rules",))
    for index, library in _valid_entries(parts.libraries):
        if library.hdr is not None and library.hdr != parts.hdr and (problem := hdr_problem(library.hdr)):
            found.errors.append((("libraries", index, "hdr"), problem))
        if library.rules is not None and library.rules != parts.rules:
            rule_problems(library.rules, ("libraries", index, "rules"))


def _check_folders(parts: Checkable, found: Found) -> None:
    # Required keys (the archive, a library's source) are never in doubt in a part that was made.
    paths, auth, store = parts.paths, parts.auth, parts.store
    archive = _real(paths.archive) if paths is not None else None
    state_dir = _real(paths.state_dir) if paths is not None and parts.sure(("paths", "state_dir")) else None
    jwt_secret_file = (
        _real(auth.jwt_secret_file) if auth is not None and parts.sure(("auth", "jwt_secret_file")) else None
    )
    password_file = store.password_file if store is not None and parts.sure(("store", "password_file")) else None
    libraries = _valid_entries(parts.libraries)
    sources = {index: _real(library.source) for index, library in libraries}
    if paths is not None and archive is not None:
        if not paths.archive.is_dir():
            found.warnings.append(
                (
                    ("paths", "archive"),
                    f"archive folder {str(paths.archive)!r} does not exist yet; nothing is published until it does",
                )
            )
        if state_dir is not None and (state_dir == archive or _inside(state_dir, archive)):
            where = "is the archive itself" if state_dir == archive else "is inside the archive"
            message = f"state_dir {where}: Resilio Sync would share the database"
            found.errors.append((("paths", "state_dir"), message))
        if jwt_secret_file is not None and _inside(jwt_secret_file, archive):
            found.errors.append(
                (
                    ("auth", "jwt_secret_file"),
                    "jwt_secret_file is inside the archive: Resilio Sync would share the secret",
                )
            )
        if password_file is not None and _inside(_real(password_file), archive):
            found.errors.append(
                (
                    ("store", "password_file"),
                    "password_file is inside the archive: Resilio Sync would share the password",
                )
            )
    for index, library in libraries:
        source = sources[index]
        loc: Location = ("libraries", index, "source")
        if paths is not None and archive is not None:
            if source == archive:
                found.errors.append(
                    (loc, "source is the archive itself: the agent would encode its own output forever")
                )
            elif _inside(archive, source):
                found.errors.append(
                    (
                        loc,
                        f"the archive {str(paths.archive)!r} is inside this source: "
                        "the agent would encode its own output forever",
                    )
                )
            elif _inside(source, archive):
                found.errors.append(
                    (
                        loc,
                        f"source is inside the archive {str(paths.archive)!r}: "
                        "the agent would encode its own output forever",
                    )
                )
        for other_index, other in sources.items():
            if other_index >= index:
                break
            if source == other or _inside(source, other) or _inside(other, source):
                found.errors.append(
                    (loc, f"source overlaps libraries[{other_index}].source: files would be encoded twice")
                )
        reason = "hb2r never writes to watched folders"
        if state_dir is not None and (state_dir == source or _inside(state_dir, source)):
            where = "is the source" if state_dir == source else "is inside the source"
            message = f"state_dir {where} of library {library.name!r}: {reason}"
            found.errors.append((("paths", "state_dir"), message))
        if jwt_secret_file is not None and _inside(jwt_secret_file, source):
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


def _check_presets(parts: Checkable, found: Found) -> None:
    every_library_known = parts.libraries is not None and None not in parts.libraries
    used = {library.preset for _, library in _valid_entries(parts.libraries)}
    for name, preset in (parts.presets or {}).items():
        if every_library_known and name not in used:
            found.warnings.append((("presets", name), f"preset {name!r} is not used by any library"))
        if preset is None or not parts.sure(("presets", name, "import_file")):
            continue
        if preset.import_file is not None and not os.access(preset.import_file, os.R_OK):
            found.errors.append(
                (("presets", name, "import_file"), f"cannot read preset file {str(preset.import_file)!r}")
            )


def _check_limits(parts: Checkable, found: Found) -> None:
    headroom = "the host may be left with little headroom"
    percents: list[tuple[Location, int, str]] = []
    if parts.limits is not None:
        percents.append((("limits", "cpu_percent"), parts.limits.cpu_percent, headroom))
        percents.append((("limits", "memory_percent"), parts.limits.memory_percent, headroom))
    if parts.scan is not None:
        vanish_risk = "an unmounted disk may not pause its library"
        percents.append((("scan", "max_vanish_percent"), parts.scan.max_vanish_percent, vanish_risk))
    for loc, value, risk in percents:
        if value > HIGH_PERCENT and parts.sure(loc):
            found.warnings.append((loc, f"{value}% is above {HIGH_PERCENT}%: {risk}"))
    retry = parts.retry
    retry_sure = parts.sure(("retry", "backoff")) and parts.sure(("retry", "max_backoff"))
    if retry is not None and retry_sure and retry.max_backoff < retry.backoff:
        found.errors.append((("retry", "max_backoff"), "max_backoff is shorter than backoff"))


def _check_users(parts: Checkable, found: Found) -> None:
    seen: dict[str, int] = {}
    for index, user in enumerate(parts.users or ()):
        if user is None:
            continue
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
