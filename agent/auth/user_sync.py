"""The config's `users:` into the store, at start and on every reload; and the generated first admin.

With no users declared, hb2r makes `admin` with a random password written to
`<state_dir>/initial-admin-password` (0600; its folder is synced, see agent.durable); the
first declared user replaces it, and the file is removed so the password does not linger.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config.models import Config
from agent.durable import write_atomically
from agent.passwords import hash_password
from agent.plan import plan_users
from agent.timestamps import stamp

if TYPE_CHECKING:
    from agent.store.protocol import Store

INITIAL_ADMIN = "admin"
INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name


def sync_users(store: Store, config: Config, *, now: datetime, log: Any) -> list[tuple[str, str]]:
    """Make the stored users match the config's; return the (name, change) pairs applied.

    With no users declared and none generated yet, make `admin` with a random password and
    write it to `<state_dir>/initial-admin-password` (0600); log where, never the password.
    """
    changes = plan_users(config.users, store.load_users())
    applied: list[tuple[str, str]] = []
    with store.transaction():
        for change in changes:
            store.apply_user_change(change, now=stamp(now))
            applied.append((change.name, str(change.change)))
            log.info("user changed", user=change.name, change=str(change.change), role=change.role)
    password_file = config.paths.state_dir / INITIAL_PASSWORD_FILE
    if config.users:
        if password_file.exists():
            password_file.unlink()  # that admin is gone: its password must not linger
            log.info("initial admin removed; users now come from the config", file=str(password_file))
        return applied
    if any(user.generated for user in store.load_users()):
        return applied
    password = secrets.token_urlsafe(18)  # 24 characters
    _write_private(password_file, password + "\n")
    with store.transaction():
        store.add_generated_admin(
            name=INITIAL_ADMIN,
            password_hash=hash_password(password, rounds=config.auth.bcrypt_rounds),
            now=stamp(now),
        )
    log.warning(
        "no users in the config: made user 'admin'; its password is in the file named here",
        file=str(password_file),
    )
    applied.append((INITIAL_ADMIN, "add"))
    return applied


def _write_private(path: Path, text: str) -> None:
    """Write text to path, readable by the owner only, replacing any older file atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(path, text.encode("utf-8"), mode=0o600)
