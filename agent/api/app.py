"""The aiohttp application: `init_app(context)` for tests and for `serve()` in `hb2r run`.

It runs on the agent's own event loop. Handlers only read SQLite (indexed, a millisecond or
less) and the engine's memory; bcrypt goes to its own threads (`agent.auth.bcrypt_pool`).
"""

from __future__ import annotations

import re

from aiohttp import web

from agent.api import (
    config_view,
    health,
    history,
    hosts,
    jobs,
    libraries,
    metrics,
    openapi,
    page,
    realtime,
    sessions,
    status,
)
from agent.api.context import CONTEXT, ApiContext
from agent.api.listener import IDLE_TIMEOUT_SECONDS, CappedSite
from agent.api.middlewares import MAX_BODY_BYTES, audit, cors, errors
from agent.api.security import Handler
from agent.descriptors import MAX_CONNECTIONS

_LISTEN = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")

ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/health", health.health),
    ("GET", "/metrics", metrics.metrics),
    ("GET", "/api/openapi.json", openapi.openapi),
    ("POST", "/api/auth/login", sessions.login),
    ("GET", "/api/auth/me", sessions.me),
    ("POST", "/api/auth/logout", sessions.logout),
    ("GET", "/api/status", status.status),
    ("GET", "/api/system", status.system),
    ("GET", "/api/hosts", hosts.list_hosts),
    ("GET", "/api/history", history.history_of_days),
    ("GET", "/api/jobs", jobs.list_jobs),
    ("GET", "/api/jobs/{id}", jobs.get_job),
    ("POST", "/api/jobs/{id}/retry", jobs.retry_job),
    ("POST", "/api/jobs/{id}/cancel", jobs.cancel_job),
    ("POST", "/api/jobs/{id}/priority", jobs.front_job),
    ("POST", "/api/libraries/{name}/pause", libraries.pause),
    ("POST", "/api/libraries/{name}/resume", libraries.resume),
    ("POST", "/api/scan", libraries.scan),
    ("GET", "/api/config", config_view.config),
    ("GET", "/api/realtime", realtime.realtime),
    ("GET", "/", page.index),
    ("GET", "/static/{name}", page.static),
)


def init_app(context: ApiContext) -> web.Application:
    """Return the application serving context's agent."""
    app = web.Application(middlewares=[audit, cors, errors], client_max_size=MAX_BODY_BYTES)
    app[CONTEXT] = context
    app[realtime.HUB] = realtime.Hub(context)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_route("HEAD", "/health", health.health)  # for probes that only look at the status
    app.router.add_route("HEAD", "/", page.index)  # `curl -I`: the headers of the page
    app.router.add_route("HEAD", "/static/{name}", page.static)
    app.on_shutdown.append(_close_sockets)
    return app


async def _close_sockets(app: web.Application) -> None:
    await app[realtime.HUB].close()


def listen_address(listen: str) -> tuple[str, int]:
    """Given `host:port` or `[v6]:port` (already validated by the config), return (host, port)."""
    match = _LISTEN.match(listen)
    if match is None:
        raise ValueError(f"listen must be host:port or [v6]:port, got {listen!r}")
    return match.group("v6") or match.group("host"), int(match.group("port"))


async def serve(
    context: ApiContext, *, max_connections: int = MAX_CONNECTIONS, idle_timeout: float = IDLE_TIMEOUT_SECONDS
) -> web.AppRunner:
    """Start serving at `server.listen`, at most max_connections at once, closing connections idle
    for idle_timeout seconds (agent/api/listener.py); return the runner (call `cleanup()` to stop).

    Raise OSError (e.g. address in use) if the address cannot be bound.
    """
    host, port = listen_address(context.state.config.server.listen)
    runner = web.AppRunner(
        init_app(context),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=2.0,
        keepalive_timeout=idle_timeout,
    )
    await runner.setup()
    site = CappedSite(runner, host, port, cap=max_connections, log=context.log)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    return runner
