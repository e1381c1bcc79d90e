"""What the HTTP handlers share: the running agent's parts, and the session of a request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from agent import __version__
from agent.api.forwarded import client_address
from agent.auth.bcrypt_pool import PasswordChecker
from agent.auth.tokens import Session
from agent.dispatcher import Dispatcher, SampleSource
from agent.engine import AgentState, rule_skips
from agent.login_limits import LoginLimits
from agent.metrics import Metrics, Snapshot
from agent.presence import late_after


@dataclass
class ApiContext:
    """The agent as the API sees it. `secret` and `limiter` are replaced on a config reload."""

    state: AgentState
    dispatcher: Dispatcher
    request_scan: Callable[[], None]
    secret: bytes
    metrics: Metrics
    checker: PasswordChecker
    limiter: LoginLimits
    started_at: datetime
    version: str
    log: Any
    health_cache: dict[str, Any] = field(default_factory=dict)


def assemble(
    state: AgentState,
    *,
    sampler: SampleSource,
    secret: bytes,
    request_scan: Callable[[], None],
    log: Any,
    now: datetime,
) -> ApiContext:
    """Given the engine's state, return the dispatcher, metrics and API of one agent, wired
    together: the dispatcher reports finished encodes to the metrics, which read it back."""
    dispatcher = Dispatcher(state, log=log, sampler=sampler)

    def snapshot() -> Snapshot:
        running = dispatcher.running.values()
        return Snapshot(
            libraries=tuple(library.name for library in state.config.libraries),
            gate_reasons=dispatcher.blocked_reasons,
            running_encodes=sum(1 for entry in running if not entry.suspended),
            suspended_encodes=sum(1 for entry in running if entry.suspended),
            last_scan_seconds=None if state.last_pass is None else state.last_pass.seconds,
            config_generation=state.config_generation,
            late_after_seconds=late_after(state.config.store.lease).total_seconds(),
            rule_skips=rule_skips(state),
        )

    metrics = Metrics(store=lambda: state.store, snapshot=snapshot, version=__version__)
    dispatcher.observer = metrics
    return ApiContext(
        state=state,
        dispatcher=dispatcher,
        request_scan=request_scan,
        secret=secret,
        metrics=metrics,
        checker=PasswordChecker(),
        limiter=LoginLimits(state.config.auth.login_rate_limit),
        started_at=now,
        version=__version__,
        log=log,
    )


CONTEXT = web.AppKey("context", ApiContext)
SESSION_KEY = web.RequestKey("session", Session)
CLIENT_KEY = web.RequestKey("client", str)


def context_of(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def session_of(request: web.Request) -> Session | None:
    return request.get(SESSION_KEY)


def client_of(request: web.Request) -> str:
    """Return the request's client address: the peer, or behind a trusted proxy the client it names."""
    client = request.get(CLIENT_KEY)
    if client is None:
        client = client_address(
            peer=request.remote,
            forwarded_for=request.headers.getall("X-Forwarded-For", []),
            trusted=context_of(request).state.config.server.trusted_proxies,
        )
        request[CLIENT_KEY] = client
    return client
