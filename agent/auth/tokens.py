"""JWT sessions: a token issued at login, checked on every request, ended by logout.

A token is signed (HS256 only) and names the user, a random id, its expiry and a digest of the
user's password hash at login; every check looks the user up in the store, so a removed user
or a changed password ends the user's tokens at once. A token issued up to CLOCK_LEEWAY "in the
future" is accepted (the wall clock may step back); times are checked against `now`, never
against PyJWT's own clock.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt

from agent.domain import UserRecord
from agent.timestamps import stamp

if TYPE_CHECKING:
    from agent.store.protocol import Store

ALGORITHM = "HS256"
CLOCK_LEEWAY = timedelta(minutes=5)


class AuthError(Exception):
    """A request cannot be authenticated; the message is safe to show the client."""


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
