"""Bearer tokens on requests, and the roles a handler needs."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiohttp import web

from agent.api.context import SESSION_KEY, context_of
from agent.api.errors import ApiError
from agent.auth.tokens import AuthError, Session, authenticate

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hb2r"'}


def bearer_token(request: web.Request) -> str:
    """Return the request's bearer token; raise a 401 ApiError if there is none or it is malformed."""
    header = request.headers.get("Authorization")
    if header is None:
        raise ApiError(401, "log in first: send 'Authorization: Bearer <token>'", headers=CHALLENGE)
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise ApiError(401, "the Authorization header must be 'Bearer <token>'", headers=CHALLENGE)
    return token


def session_for(request: web.Request, token: str) -> Session:
    context = context_of(request)
    try:
        session = authenticate(context.state.store, secret=context.secret, token=token, now=datetime.now(UTC))
    except AuthError as error:
        raise ApiError(401, str(error), headers=CHALLENGE) from None
    request[SESSION_KEY] = session
    return session


def requires(role: str) -> Callable[[Handler], Handler]:
    """Wrap a handler so that it runs only for a valid token whose user has role ('user' or 'admin')."""

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = session_for(request, bearer_token(request))
            if role == "admin" and not session.is_admin:
                raise ApiError(403, f"user {session.user!r} has role {session.role!r}; this needs an admin")
            return await handler(request)

        guarded.required_role = role  # type: ignore[attr-defined]  # read by the OpenAPI test
        return guarded

    return wrap
