"""bcrypt password hashes for the `users:` list."""

from __future__ import annotations

import bcrypt

BCRYPT_MAX_BYTES = 72


class PasswordRefused(ValueError):
    """The password cannot be hashed safely; the message says why."""


def hash_password(password: str, *, rounds: int = 12) -> str:
    """Given a password, return its bcrypt hash; raise PasswordRefused if it is empty or too long.

    bcrypt silently ignores what comes after 72 bytes, so a longer password would be
    weaker than it looks: it is refused rather than cut.
    """
    if not password:
        raise PasswordRefused("the password is empty")
    size = len(password.encode("utf-8"))
    if size > BCRYPT_MAX_BYTES:
        raise PasswordRefused(
            f"the password is {size} bytes; bcrypt uses at most {BCRYPT_MAX_BYTES}, so choose a shorter one"
        )
    if not 4 <= rounds <= 31:
        raise PasswordRefused(f"rounds must be from 4 to 31, got {rounds}")
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    """Return whether password matches the bcrypt hash (False for a malformed hash)."""
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:
        return False
