"""How a user name typed at a failed login appears in the log.

Why: people type their password into the name field. Logged as typed, it would sit in the
journal for anyone who reads logs. So a name that is a configured user is logged as it is
(it is no secret, and "login failed user=admin" is what an operator needs), and any other
name as a cut: at most its first two characters (none for a name under 4 characters, one
under 8, so never more than a quarter of it), its length, and a tag, e.g.
`Tr… (17 characters, #3f09a1c2)`. The tag is a keyed hash (HMAC-SHA256 with a key made at
start), so the same name gets the same tag and attempts can be told apart and counted, but a
short tag of a weak password cannot be reversed by trying candidates without that key. Tags
change when the agent restarts. Control characters and the like are shown as `?`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TAG_KEY = secrets.token_bytes(32)  # per process: the tag links attempts within one run only
TAG_LENGTH = 8
MAX_SHOWN = 2


def logged_name(typed: str, *, is_user: bool, key: bytes = TAG_KEY) -> str:
    """Given the name typed at a login and whether it is a configured user, return how the log shows it."""
    if is_user:
        return typed
    shown = min(MAX_SHOWN, len(typed) // 4)
    head = "".join(character if character.isprintable() else "?" for character in typed[:shown])
    tag = hmac.new(key, typed.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:TAG_LENGTH]
    return f"{head}… ({len(typed)} characters, #{tag})"
