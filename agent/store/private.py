"""The state folder and the files in it belong to the user running hb2r, and no one else.

Why: whoever may write the state folder may plant a link in it. Were root to run `hb2r restore`
in a folder the agent's user owns, that user could replace `agent.lock` with a link to
`/etc/shadow`, and root would write into it (and once even chowned it to that user). So:

- hb2r works only in a state folder that belongs to the user running it (or to root), writable
  by no group and no other user, inside folders that belong to root or that user and that others
  may write only with the sticky bit (like /tmp). Otherwise it refuses, naming the folder, its
  owner or mode, and the fix: run hb2r as the folder's owner (the deploy's playbooks do,
  `runuser -u hb2r -- hb2r restore ...`), or `chmod 700` the folder.
- Files hb2r opens there itself (the lock, the database before SQLite opens it, the JWT secret,
  the generated admin password) are opened with O_NOFOLLOW: a link is refused, never followed.
  SQLite opens the database's side files itself and follows links; in a folder no one else may
  write, only the running user could have put one there, and then hb2r refuses it too.
- hb2r never chowns: what it makes belongs to the user who runs it, the folder's owner.

`folder_problem()` decides from what stat says; `check_state_dir()` and `open_nofollow()` act.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from pathlib import Path

from agent.store.db import StateError

ROOT_UID = 0
GROUP_OR_OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH


def folder_problem(
    *, folder: Path, owner: str, owner_uid: int, mode: int, runner: str, runner_uid: int, inside: Path | None
) -> str | None:
    """Given a folder's owner and mode and who runs hb2r, return why hb2r may not keep state in it, or None.

    `inside` is None for the state folder itself, else the state folder this is an ancestor of.
    """
    if inside is None:
        if owner_uid not in (runner_uid, ROOT_UID):
            return (
                f"state_dir {folder} belongs to user {owner}, not to {runner} who runs this hb2r; "
                f"run hb2r as {owner} (e.g. `runuser -u {owner} -- hb2r ...`): {owner} may put links in it "
                f"that would make {runner} write elsewhere"
            )
        if mode & GROUP_OR_OTHERS_WRITE:
            return (
                f"state_dir {folder} is writable by {_who(mode)} (mode {stat.S_IMODE(mode):04o}); "
                f"make it private: chmod 700 {folder}"
            )
        return None
    if owner_uid not in (runner_uid, ROOT_UID):
        return (
            f"state_dir {inside} is inside {folder}, which belongs to user {owner}, who could swap it; "
            f"move state_dir to a folder of {runner} or root"
        )
    if mode & GROUP_OR_OTHERS_WRITE and not mode & stat.S_ISVTX:
        return (
            f"state_dir {inside} is inside {folder}, writable by {_who(mode)} without the sticky bit "
            f"(mode {stat.S_IMODE(mode):04o}); fix it: chmod go-w {folder}"
        )
    return None


def check_state_dir(state_dir: Path) -> None:
    """Given an existing state folder, raise StateError if anyone but the running user (or root) may change it."""
    runner_uid = os.geteuid()
    folder = state_dir.absolute()
    ancestors = {*folder.parents, *folder.resolve().parents}
    for path, inside in [(folder, None), *((ancestor, folder) for ancestor in sorted(ancestors, reverse=True))]:
        try:
            status = path.stat()
        except OSError as error:
            raise StateError(f"cannot inspect {path}: {error.strerror}") from None
        problem = folder_problem(
            folder=path,
            owner=_user_name(status.st_uid),
            owner_uid=status.st_uid,
            mode=status.st_mode,
            runner=_user_name(runner_uid),
            runner_uid=runner_uid,
            inside=inside,
        )
        if problem is not None:
            raise StateError(problem)


def make_state_dir(state_dir: Path) -> None:
    """Make the state folder (0700) if missing, then check it; raise StateError if it cannot be made or is unsafe."""
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise StateError(f"cannot create state_dir {state_dir}: {error.strerror}") from None
    check_state_dir(state_dir)


def open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open path without following a link there; return the descriptor.

    Raise StateError saying so if path is a symbolic link; let other OSErrors through.
    """
    try:
        return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise StateError(link_refused(path)) from None
        raise


def refuse_links(*paths: Path) -> None:
    """Raise StateError if any of paths is a symbolic link."""
    for path in paths:
        if path.is_symlink():
            raise StateError(link_refused(path))


def link_refused(path: Path) -> str:
    return f"{path} is a symbolic link; hb2r does not follow links in its state folder: remove it"


def _who(mode: int) -> str:
    parts = [name for bit, name in ((stat.S_IWGRP, "its group"), (stat.S_IWOTH, "others")) if mode & bit]
    return " and ".join(parts)


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"
