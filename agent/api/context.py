"""What the HTTP handlers share: the running agent's parts, and the session of a request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from agent.auth import PasswordChecker, RateLimiter, Session
from agent.engine import EngineState
from agent.metrics import Metrics
from agent.worker import Dispatcher


@dataclass
class ApiContext:
    """The agent as the API sees it. `secret` and `limiter` are replaced on a config reload."""

    state: EngineState
    dispatcher: Dispatcher
    request_scan: Callable[[], None]
    secret: bytes
    metrics: Metrics
    checker: PasswordChecker
    limiter: RateLimiter
    started_at: datetime
    version: str
    log: Any
    health_cache: dict[str, Any] = field(default_factory=dict)


CONTEXT = web.AppKey("context", ApiContext)
SESSION_KEY = web.RequestKey("session", Session)


def context_of(request: web.Request) -> ApiContext:
    return request.app[CONTEXT]


def session_of(request: web.Request) -> Session | None:
    return request.get(SESSION_KEY)
