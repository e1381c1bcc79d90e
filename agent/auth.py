"""Who may use the API: users from the config, bcrypt passwords, JWT sessions, roles.

Design notes:
- Users come from the config's `users:` and are written to SQLite at start and on every
  reload (`sync_users`). With no users declared, hb2r makes `admin` with a random password
  written to `<state_dir>/initial-admin-password` (0600); the first declared user replaces it.
- A token is a JWT (HS256 only) naming the user, a random id (`jti`), its expiry and `pwd`, a
  short digest of the user's password hash at login. Every request looks the user up in
  SQLite: a user removed from the config, or whose hash changed, is refused at once, and the
  role is always the stored one. Logout records the `jti` until the token would have expired.
- bcrypt is slow on purpose; it runs in an executor of its own with LOGIN_THREADS threads at
  nice 10, so a storm of logins leaves the event loop a core and its pick of the CPU, and at
  most MAX_PENDING_LOGINS wait
  (the rest are told to come back later). An unknown user is checked against a dummy hash
  of the same cost: the answer and the time are those of a wrong password.
- Login attempts are limited per client address and per (address, user name), and failures
  for one name are slowed down across addresses: see agent.login_limits.
- The wall clock may step back (NTP, a restored VM): a token issued up to CLOCK_LEEWAY "in
  the future" is accepted, so a small step does not log everyone out; one from further ahead
  is refused (log in again). A step back lengthens the tokens' life by as much.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import hashlib
import os
import secrets
import stat
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import bcrypt
import jwt

from agent.config.models import Auth, Config
from agent.domain import UserRecord
from agent.durable import write_atomically
from agent.passwords import check_password, hash_password
from agent.plan import plan_users
from agent.timestamps import stamp

if TYPE_CHECKING:
    from agent.store.protocol import Store

ALGORITHM = "HS256"
SECRET_BYTES = 32
INITIAL_ADMIN = "admin"
INITIAL_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name
LOGIN_THREADS = max(1, (os.cpu_count() or 2) // 2)
MAX_PENDING_LOGINS = 64
ROLES = ("user", "admin")
CLOCK_LEEWAY = timedelta(minutes=5)
_BCRYPT_ALPHABET = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class AuthError(Exception):
    """A request cannot be authenticated; the message is safe to show the client."""


class SecretError(Exception):
    """The JWT secret cannot be read or made; the message says why."""


@dataclass(frozen=True)
class Session:
    """An authenticated request's user and token."""

    user: str
    role: str
    token_id: str
    expires_at: datetime

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    user: str
    role: str


def load_secret(auth: Auth) -> bytes:
    """Return the JWT signing secret: `auth.jwt_secret`, else the file's content (made if missing).

    Raise SecretError if the file cannot be read or made, is a link, may be read or changed by
    anyone but its owner, or holds fewer than 32 bytes.
    """
    if auth.jwt_secret:
        return auth.jwt_secret.encode("utf-8")
    path = auth.jwt_secret_file
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        pass
    except OSError as error:
        raise SecretError(f"cannot create jwt_secret_file {path}: {error.strerror}") from None
    else:
        with os.fdopen(descriptor, "wb") as file:
            file.write(secrets.token_bytes(SECRET_BYTES))
            file.flush()
            os.fsync(file.fileno())
    secret = _read_private(path)
    if secret.isascii():
        secret = secret.strip()  # a secret an operator wrote with echo ends in a newline
    if len(secret) < SECRET_BYTES:
        raise SecretError(
            f"jwt_secret_file {path} holds {len(secret)} bytes; at least {SECRET_BYTES} are needed "
            "(delete it and hb2r makes a new one)"
        )
    return secret


def _read_private(path: Path) -> bytes:
    """Return the content of the secret file at path; raise SecretError if it is a link, not a
    file, or open to group or others (a secret others can read lets them sign any user's token)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise SecretError(
                f"jwt_secret_file {path} is a symbolic link; hb2r does not follow links to its secrets: "
                "put the file itself there (0600)"
            ) from None
        raise SecretError(f"cannot read jwt_secret_file {path}: {error.strerror}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise SecretError(f"cannot read jwt_secret_file {path}: it is not a file")
        mode = stat.S_IMODE(status.st_mode)
        if mode & 0o077:
            raise SecretError(
                f"jwt_secret_file {path} may be read or changed by users other than its owner (mode {mode:04o}); "
                f"anyone who reads it can sign tokens for any user: make it private: chmod 600 {path}"
            )
        chunks = []
        while chunk := os.read(descriptor, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as error:
        raise SecretError(f"cannot read jwt_secret_file {path}: {error.strerror}") from None
    finally:
        os.close(descriptor)


def password_digest(password_hash: str) -> str:
    """Return the short digest of a password hash that a token carries (not the hash itself)."""
    return hashlib.sha256(password_hash.encode("ascii", "replace")).hexdigest()[:16]


def issue_token(*, secret: bytes, user: UserRecord, lifetime: timedelta, now: datetime) -> IssuedToken:
    """Return a new signed token for user, valid for lifetime from now."""
    expires_at = (now + lifetime).replace(microsecond=0)
    claims = {
        "sub": user.name,
        "jti": secrets.token_urlsafe(16),
        "iat": int(now.timestamp()),
        "exp": int(expires_at.timestamp()),
        "pwd": password_digest(user.password_hash),
    }
    token = jwt.encode(claims, secret, algorithm=ALGORITHM)
    return IssuedToken(token=token, expires_at=expires_at, user=user.name, role=user.role)


def authenticate(store: Store, *, secret: bytes, token: str, now: datetime) -> Session:
    """Given a bearer token, return its session; raise AuthError saying why it is refused."""
    try:
        claims = _verified_claims(token, secret)
    except jwt.InvalidTokenError:
        raise AuthError("the token is not valid") from None
    name, token_id, digest = claims["sub"], claims["jti"], claims["pwd"]
    issued, expiry = claims["iat"], claims["exp"]
    if not all(isinstance(value, str) for value in (name, token_id, digest)):
        raise AuthError("the token is not valid")
    if type(issued) is not int or type(expiry) is not int or issued > (now + CLOCK_LEEWAY).timestamp():
        raise AuthError("the token is not valid")
    if expiry <= now.timestamp():
        raise AuthError("the token has expired; log in again")
    user = store.find_user(name)
    if user is None or not secrets.compare_digest(password_digest(user.password_hash), digest):
        raise AuthError("the token is no longer valid; log in again")
    if store.is_revoked(token_id):
        raise AuthError("the token was logged out; log in again")
    return Session(user=user.name, role=user.role, token_id=token_id, expires_at=datetime.fromtimestamp(expiry, UTC))


@functools.lru_cache(maxsize=1024)
def _verified_claims(token: str, secret: bytes) -> dict[str, Any]:
    """Return the claims of a token whose signature is good; raise jwt.InvalidTokenError if not.

    Cached by (token, secret): the signature of a token cannot change, and verifying it is
    most of the cost of an API request. Everything that can change (expiry against the
    clock, the user, the password, a logout) is checked on every request by the caller.
    Only good tokens are cached (an exception is not), so garbage cannot fill the cache.
    """
    claims: dict[str, Any] = jwt.decode(
        token,
        secret,
        algorithms=[ALGORITHM],
        # Times are checked by the caller against `now`, not against PyJWT's own clock.
        options={"require": ["sub", "jti", "exp", "iat", "pwd"], "verify_exp": False, "verify_iat": False},
    )
    return claims


def revoke(store: Store, session: Session, *, now: datetime) -> None:
    """End session's token; forget tokens that have expired anyway."""
    store.revoke_token(session.token_id, expires_at=stamp(session.expires_at), now=stamp(now))


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


class LoginBusy(Exception):
    """Too many logins are waiting for bcrypt already."""


class PasswordChecker:
    """Runs bcrypt off the event loop, in a small executor of its own."""

    def __init__(self, *, threads: int = LOGIN_THREADS) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="bcrypt", initializer=_lower_thread_priority
        )
        self._pending = 0

    async def check(self, password: str, user: UserRecord | None, *, cost: int) -> bool:
        """Return whether password is user's; for None (an unknown user), check a dummy hash of
        bcrypt cost `cost` and return False, so that both take the same time.

        Raise LoginBusy if MAX_PENDING_LOGINS checks are waiting already.
        """
        if self._pending >= MAX_PENDING_LOGINS:
            raise LoginBusy("too many logins at once")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            target = _dummy_hash(cost) if user is None else user.password_hash
            matches = await loop.run_in_executor(self._executor, check_password, password, target)
        finally:
            self._pending -= 1
        return matches and user is not None

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


BCRYPT_NICE = 10


def _lower_thread_priority() -> None:
    """Make the calling (bcrypt) thread nicer than the event loop's: a login storm then takes
    what the loop leaves over. Linux keeps niceness per thread, addressed by its thread id."""
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BCRYPT_NICE)


def bcrypt_cost(password_hash: str, *, default: int) -> int:
    """Return the cost of a `$2b$12$...` hash (default if it does not say)."""
    field = password_hash[4:6]
    return int(field) if field.isdigit() else default


def _dummy_hash(cost: int) -> str:
    """Return a hash no password matches whose check costs what a real hash of this cost does.

    Only the salt part must be well formed, so nothing is hashed here: the first unknown name
    must not take twice as long as the next ones (or as a wrong password).
    """
    salt = bcrypt.gensalt(rounds=min(max(cost, 4), 31)).decode("ascii")
    return salt + "".join(secrets.choice(_BCRYPT_ALPHABET) for _ in range(31))


def _write_private(path: Path, text: str) -> None:
    """Write text to path, readable by the owner only, replacing any older file atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomically(path, text.encode("utf-8"), mode=0o600)
