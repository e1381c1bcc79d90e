"""An admin's levers on libraries: pause and resume (kept across restarts), and "scan now".

A pause holds the library's queue: no new encode starts and queued jobs are kept; an encode
already running finishes. Resume lets the dispatcher start its jobs again at once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from agent.api import params
from agent.api.context import ApiContext, context_of, session_of
from agent.api.errors import not_found
from agent.api.security import requires
from agent.engine import update_conditions
from agent.timestamps import stamp


@requires("admin")
async def pause(request: web.Request) -> web.Response:
    context, name = _library(request)
    session = session_of(request)
    who = session.user if session else "an operator"
    now = datetime.now(UTC)
    hold = context.state.store.hold(name, reason=f"paused by {who} through the API", since=stamp(now))
    context.state.held_libraries[name] = hold
    context.log.info("library paused", library=name, by=who)
    return _answer(context, name, now)


@requires("admin")
async def resume(request: web.Request) -> web.Response:
    # A library taken out of the config may still be held (the hold is kept in SQLite): let it go.
    context, name = _library(request, or_held=True)
    session = session_of(request)
    context.state.store.release(name)
    context.state.held_libraries.pop(name, None)
    context.log.info("library resumed", library=name, by=session.user if session else None)
    context.dispatcher.wake()
    return _answer(context, name, datetime.now(UTC))


@requires("admin")
async def scan(request: web.Request) -> web.Response:
    context = context_of(request)
    context.request_scan()
    session = session_of(request)
    context.log.info("scan requested", by=session.user if session else None)
    return web.json_response({"scan": "requested"}, status=202)


def _library(request: web.Request, *, or_held: bool = False) -> tuple[ApiContext, str]:
    """Return the context and the {name} of a configured library (or, if or_held, a held one)."""
    context = context_of(request)
    name = params.library_name(request)
    if or_held and name in context.state.held_libraries:
        return context, name
    if all(library.name != name for library in context.state.config.libraries):
        known = ", ".join(library.name for library in context.state.config.libraries) or "none"
        raise not_found(f"there is no library {name!r} (known: {known})")
    return context, name


def _answer(context: ApiContext, name: str, now: datetime) -> web.Response:
    condition = update_conditions(context.state, now=now).get(name)  # None: no longer configured
    return web.json_response(
        {
            "name": name,
            "paused": name in context.state.held_libraries,
            "condition": None
            if condition is None
            else {"status": condition.status, "reason": condition.reason, "since": stamp(condition.since)},
        }
    )
