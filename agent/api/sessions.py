"""Log in, who am I, log out.

A login is first admitted by the login limits (agent.login_limits: per client address and per
(address, name); 429 past them), then bcrypt checks it; a failure's answer may be held back a
little when its name has failed many times recently. The log never holds a name as typed
unless it is a user's (agent.login_names).
"""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from agent.api import params
from agent.api.context import client_of, context_of, session_of
from agent.api.errors import ApiError
from agent.api.security import CHALLENGE, requires
from agent.auth.bcrypt_pool import LoginBusy, bcrypt_cost
from agent.auth.tokens import issue_token, revoke
from agent.login_names import logged_name
from agent.timestamps import stamp

WRONG = "wrong user name or password"


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024, repr=False)


async def login(request: web.Request) -> web.Response:
    context = context_of(request)
    asked = await params.body(request, LoginRequest)
    client = client_of(request)
    store = context.state.store
    user = store.find_user(asked.username)
    shown = logged_name(asked.username, is_user=user is not None)
    wait = context.limiter.admit(address=client, name=asked.username, now=time.monotonic())
    if wait is not None:
        context.log.warning("login refused: too many attempts", user=shown, client=client)
        raise ApiError(
            429,
            f"too many login attempts; try again in {math.ceil(wait)} s",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    # An unknown name is checked against a dummy hash as costly as the costliest real one.
    rounds = context.state.config.auth.bcrypt_rounds
    known = (user,) if user else store.load_users()
    cost = max((bcrypt_cost(u.password_hash, default=rounds) for u in known), default=rounds)
    try:
        matches = await context.checker.check(asked.password, user, cost=cost)
    except LoginBusy:
        raise ApiError(429, "too many logins at once; try again shortly", headers={"Retry-After": "1"}) from None
    if not matches or user is None:
        delay = context.limiter.failed(name=asked.username, now=time.monotonic())
        held_back = {"held_back_s": delay} if delay else {}
        context.log.warning("login failed", user=shown, client=client, **held_back)
        await asyncio.sleep(delay)  # slows guessing at one name from many addresses; never a right password
        raise ApiError(401, WRONG, headers=CHALLENGE)
    issued = issue_token(
        secret=context.secret, user=user, lifetime=context.state.config.auth.session_timeout, now=datetime.now(UTC)
    )
    context.log.info("login", user=user.name, role=user.role, client=client)
    return web.json_response(
        {
            "token": issued.token,
            "expires_at": stamp(issued.expires_at),
            "user": {"name": issued.user, "role": issued.role},
        }
    )


@requires("user")
async def me(request: web.Request) -> web.Response:
    session = session_of(request)
    assert session is not None  # noqa: S101 - set by requires()
    return web.json_response(
        {
            "user": {"name": session.user, "role": session.role},
            "expires_at": stamp(session.expires_at),
        }
    )


@requires("user")
async def logout(request: web.Request) -> web.Response:
    context = context_of(request)
    session = session_of(request)
    assert session is not None  # noqa: S101 - set by requires()
    revoke(context.state.store, session, now=datetime.now(UTC))
    context.log.info("logout", user=session.user)
    return web.json_response({"logged_out": True})
