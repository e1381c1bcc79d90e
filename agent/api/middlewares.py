"""Middlewares: the audit log, CORS for the configured origins, errors as JSON, body size.

Order (outermost first): audit sees every answer, errors included; CORS headers go on error
answers too, so a browser can read them; the error middleware turns every exception into
`{"error", "message"}` without a stack trace or a path inside hb2r.

The audit line holds the user, method, path (never the query string, where a token may be),
status, latency and client (behind a proxy in `server.trusted_proxies`, the client it names in
X-Forwarded-For; see agent.api.forwarded). Successful GET /health and /metrics are logged at debug level only:
systemd and Prometheus ask every few seconds and would bury the lines that matter.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from agent.api.context import client_of, context_of, session_of
from agent.api.errors import ApiError, error_response
from agent.api.security import Handler

MAX_BODY_BYTES = 64 * 1024
QUIET_PATHS = frozenset({"/health", "/metrics"})
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"

_MESSAGES = {
    404: "there is no such resource",
    405: "this method is not allowed here",
    413: f"the request body is larger than {MAX_BODY_BYTES // 1024} KiB",
}


@web.middleware
async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    finally:
        session = session_of(request)
        fields = {
            "user": session.user if session else None,
            "method": request.method,
            "path": request.path,
            "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "client": client_of(request),
        }
        log = context_of(request).log
        if status < 400 and request.path in QUIET_PATHS:
            log.debug("request", **fields)
        else:
            log.info("request", **fields)


@web.middleware
async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights and label answers for the exact origins in `server.cors_origins`."""
    origin = request.headers.get("Origin")
    allowed_origins = context_of(request).state.config.server.cors_origins
    allowed = origin is not None and (origin in allowed_origins or "*" in allowed_origins)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        if not allowed:
            return error_response(403, "this origin may not call the API (see server.cors_origins)")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": origin or "",
                "Access-Control-Allow-Methods": CORS_METHODS,
                "Access-Control-Allow-Headers": CORS_HEADERS,
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )
    response = await handler(request)
    if allowed and not response.prepared:
        response.headers["Access-Control-Allow-Origin"] = origin or ""
        response.headers["Access-Control-Expose-Headers"] = "Retry-After"
        response.headers.add("Vary", "Origin")
    return response


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return error_response(413, _MESSAGES[413])
    try:
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.message, headers=error.headers)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return error_response(error.status, _MESSAGES.get(error.status, error.reason), headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:
        context_of(request).log.exception("request failed", method=request.method, path=request.path)
        return error_response(500, "internal error; the agent's log has the details")
