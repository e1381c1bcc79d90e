"""GET /api/openapi.json: an OpenAPI 3.1 document of every route (a test holds the two in step).

Request bodies come from the same pydantic models the handlers validate with, and the
patterns and bounds of path and query parameters from agent/api/params.py, which the
handlers check with: what the document calls valid is what is accepted, and the reverse.
tests/integration/test_api_schema.py holds the server to it with schemathesis.

/api/realtime is a WebSocket: OpenAPI cannot describe its messages, but it does describe
the handshake's headers, without which the answer is a 400.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent import __version__
from agent.api.history import DEFAULT_DAYS, MAX_DAYS, RECENT_LIMIT
from agent.api.jobs import MAX_PAGE
from agent.api.page import ASSETS
from agent.api.params import CURSOR_PATTERN, MAX_JOB_ID, NAME_PATTERN
from agent.api.sessions import LoginRequest

BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _fields(*names: str) -> dict[str, Any]:
    """An object that always has these members (described in the README)."""
    return {"type": "object", "required": list(names)}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


_AUTH_ERRORS = {"401": _error("No token, or it is not valid any more."), "429": _error("Too many requests.")}
_ADMIN_ERRORS = {**_AUTH_ERRORS, "403": _error("The user is not an admin.")}
_JOB_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID},
    "description": "Job id.",
}
_LIBRARY = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 64},
    "description": "Library name from the config.",
}


_HISTORY_DAY: dict[str, Any] = {
    "day": {"type": "string", "format": "date"},
    "encodes": {"type": "integer", "description": "Encodes published that day."},
    "failures": {"type": "integer", "description": "Encodes that failed that day (retried or dead)."},
    "input_bytes": {"type": "integer"},
    "output_bytes": {"type": "integer"},
    "saved_bytes": {"type": "integer", "description": "input_bytes - output_bytes of what was published."},
    "encode_seconds": {"type": "number"},
    "queue_peak": {"type": ["integer", "null"], "description": "Jobs queued, running or to retry: the day's most."},
    "queue_last": {"type": ["integer", "null"], "description": "The same, last noted that day."},
}
_HISTORY_EVENT: dict[str, Any] = {
    "id": {"type": "integer"},
    "finished_at": {"type": "string", "description": "ISO-8601, UTC."},
    "day": {"type": "string", "format": "date"},
    "library": {"type": "string"},
    "path": {"type": "string"},
    "job_id": {"type": "integer"},
    "host": {"type": "string"},
    "outcome": {"enum": ["done", "failed", "dead"]},
    "seconds": {"type": ["number", "null"], "description": "From its claim to its end; null: it never started."},
    "input_bytes": {"type": ["integer", "null"]},
    "output_bytes": {"type": ["integer", "null"], "description": "What was published; null: nothing was."},
    "saved_bytes": {"type": ["integer", "null"]},
    "larger_output": {"enum": ["copy", "keep", "skip", None], "description": "What it saved too little led to."},
    "error": {"type": ["string", "null"], "description": "Why it failed."},
}

# What a WebSocket client (a browser, aiohttp, websockets) sends by itself (RFC 6455, section 4.1).
_WEBSOCKET_HANDSHAKE = [
    {"name": "Upgrade", "in": "header", "required": True, "schema": {"enum": ["websocket"]}},
    {"name": "Connection", "in": "header", "required": True, "schema": {"enum": ["Upgrade"]}},
    {"name": "Sec-WebSocket-Version", "in": "header", "required": True, "schema": {"enum": ["13"]}},
    {
        "name": "Sec-WebSocket-Key",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"},
        "description": "16 random bytes, base64.",
    },
]


def _job_action(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": BEARER,
            "parameters": [_JOB_ID],
            "responses": {
                "200": _ok("The job after the change.", {"$ref": "#/components/schemas/Job"}),
                "400": _error("The id is not a positive whole number."),
                "404": _error("No such job."),
                "409": _error("The job is in a state that does not allow it."),
                **_ADMIN_ERRORS,
            },
        }
    }


def _library_action(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "security": BEARER,
            "parameters": [_LIBRARY],
            "responses": {
                "200": _ok("The library's condition after the change.", {"$ref": "#/components/schemas/LibraryHold"}),
                "400": _error("The name is not a library name."),
                "404": _error("No such library in the config."),
                **_ADMIN_ERRORS,
            },
        }
    }


def document() -> dict[str, Any]:
    """Return the OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hb2r (HandBrake2Resilio) agent API",
            "version": __version__,
            "description": "Health, status, jobs, sessions, live updates and metrics of a running hb2r agent.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
                },
                "LoginRequest": LoginRequest.model_json_schema(),
                "User": {
                    "type": "object",
                    "required": ["name", "role"],
                    "properties": {"name": {"type": "string"}, "role": {"enum": ["admin", "user"]}},
                    "additionalProperties": False,
                },
                "LibraryHold": {
                    "type": "object",
                    "required": ["name", "paused", "condition"],
                    "properties": {
                        "name": {"type": "string"},
                        "paused": {"type": "boolean"},
                        "condition": {
                            "description": "null: the library is no longer in the config.",
                            "oneOf": [
                                {"type": "null"},
                                {
                                    "type": "object",
                                    "required": ["status", "reason", "since"],
                                    "properties": {
                                        "status": {"type": "string"},
                                        "reason": {"type": "string"},
                                        "since": {"type": "string"},
                                    },
                                    "additionalProperties": False,
                                },
                            ],
                        },
                    },
                    "additionalProperties": False,
                },
                "Job": {
                    "type": "object",
                    "required": [
                        "id",
                        "library",
                        "path",
                        "output",
                        "state",
                        "reason",
                        "attempts",
                        "progress",
                        "error",
                        "retry_at",
                        "created_at",
                        "updated_at",
                    ],
                    "properties": {
                        "id": {"type": "integer"},
                        "library": {"type": "string"},
                        "path": {"type": "string"},
                        "output": {"type": "string"},
                        "state": {"enum": ["queued", "running", "done", "failed", "dead", "cancelled"]},
                        "reason": {"type": "string"},
                        "attempts": {"type": "integer"},
                        "progress": {"type": ["number", "null"]},
                        "fps": {"type": ["number", "null"]},
                        "eta_seconds": {"type": ["integer", "null"]},
                        "suspended": {"type": "boolean", "description": "Paused under memory pressure (running only)."},
                        "fingerprint": {"type": "string", "description": "The source content's identity (one job)."},
                        "error": {"type": ["string", "null"]},
                        "retry_at": {"type": ["string", "null"]},
                        "stderr_tail": {"type": "array", "items": {"type": "string"}},
                        "created_at": {"type": "string"},
                        "updated_at": {"type": "string"},
                        "host": {"type": ["string", "null"], "description": "The host running it under a lease."},
                    },
                },
                "Leader": {
                    "description": "The host whose turn it is to plan, and its epoch; null while none holds it.",
                    "oneOf": [
                        {"type": "null"},
                        {
                            "type": "object",
                            "required": ["host", "epoch"],
                            "properties": {
                                "host": {"type": "string"},
                                "epoch": {"type": "integer"},
                                "expires_at": {"type": "string", "description": "Database clock (/api/hosts)."},
                            },
                            "additionalProperties": False,
                        },
                    ],
                },
                "Host": {
                    "type": "object",
                    "required": [
                        "name",
                        "version",
                        "handbrake_version",
                        "libraries",
                        "running_jobs",
                        "last_seen",
                        "seen_seconds_ago",
                        "late",
                        "leader",
                    ],
                    "properties": {
                        "name": {"type": "string"},
                        "version": {"type": "string", "description": "Its hb2r version."},
                        "handbrake_version": {"type": ["string", "null"]},
                        "libraries": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "The libraries it could read when it last reported.",
                        },
                        "running_jobs": {"type": "integer"},
                        "last_seen": {"type": "string", "description": "ISO-8601, the database's clock."},
                        "seen_seconds_ago": {"type": "number"},
                        "late": {"type": "boolean", "description": "Not seen for 3 leases."},
                        "leader": {"type": "boolean", "description": "It plans now."},
                    },
                    "additionalProperties": False,
                },
                "HistoryDay": {
                    "type": "object",
                    "required": list(_HISTORY_DAY),
                    "properties": _HISTORY_DAY,
                    "additionalProperties": False,
                },
                "HistoryEvent": {
                    "type": "object",
                    "required": list(_HISTORY_EVENT),
                    "properties": _HISTORY_EVENT,
                    "additionalProperties": False,
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "timestamp", "version", "system", "database", "queue"],
                    "properties": {
                        "status": {"enum": ["healthy", "degraded", "unhealthy"]},
                        "timestamp": {"type": "string", "format": "date-time", "description": "UTC, microseconds."},
                        "version": {"type": "string"},
                        "system": {
                            "type": "object",
                            "required": ["cpu_percent", "memory_percent", "disk_free_gb"],
                            "properties": {
                                "cpu_percent": {"type": "number"},
                                "memory_percent": {"type": "number"},
                                "disk_free_gb": {"type": "number", "description": "Archive free space, GiB."},
                            },
                            "additionalProperties": False,
                        },
                        "database": {"enum": ["healthy", "unreachable"]},
                        "leader": {"$ref": "#/components/schemas/Leader"},
                        "queue": {
                            "type": "object",
                            "required": ["queue_size", "running_jobs", "completed_jobs"],
                            "properties": {
                                "queue_size": {"type": "integer", "description": "Jobs queued or waiting to retry."},
                                "running_jobs": {"type": "integer"},
                                "completed_jobs": {"type": "integer"},
                            },
                            "additionalProperties": False,
                        },
                        "problems": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Why the agent is not healthy (empty when it is).",
                        },
                        "config_generation": {"type": "integer", "description": "1 at start, +1 per reload."},
                        "uptime_seconds": {"type": "integer"},
                    },
                    "additionalProperties": False,
                },
            },
        },
        "paths": {
            "/health": {
                "get": {
                    "summary": "Health: healthy, degraded (HTTP 200) or unhealthy (HTTP 503). No token.",
                    "responses": {
                        "200": _ok("Healthy or degraded.", {"$ref": "#/components/schemas/Health"}),
                        "503": _ok("Unhealthy.", {"$ref": "#/components/schemas/Health"}),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (text format). No token.",
                    "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {}}}},
                }
            },
            "/api/openapi.json": {
                "get": {"summary": "This document.", "responses": {"200": _ok("The OpenAPI document.")}}
            },
            "/api/auth/login": {
                "post": {
                    "summary": "Log in; returns a bearer token.",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LoginRequest"}}},
                    },
                    "responses": {
                        "200": _ok(
                            "The token, when it expires, and the user.",
                            {
                                "type": "object",
                                "required": ["token", "expires_at", "user"],
                                "properties": {
                                    "token": {"type": "string"},
                                    "expires_at": {"type": "string"},
                                    "user": {"$ref": "#/components/schemas/User"},
                                },
                                "additionalProperties": False,
                            },
                        ),
                        "400": _error("The body is not a valid login request."),
                        "401": _error("Wrong user name or password."),
                        "408": _error("The body did not arrive in time."),
                        "413": _error("The body is too large."),
                        "429": _error("Too many attempts; see Retry-After."),
                    },
                }
            },
            "/api/auth/me": {
                "get": {
                    "summary": "The logged-in user.",
                    "security": BEARER,
                    "responses": {
                        "200": _ok(
                            "The user and the token's expiry.",
                            {
                                "type": "object",
                                "required": ["user", "expires_at"],
                                "properties": {
                                    "user": {"$ref": "#/components/schemas/User"},
                                    "expires_at": {"type": "string"},
                                },
                                "additionalProperties": False,
                            },
                        ),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/auth/logout": {
                "post": {
                    "summary": "End this token.",
                    "security": BEARER,
                    "responses": {
                        "200": _ok(
                            "Logged out: this token is refused from now on.",
                            {
                                "type": "object",
                                "required": ["logged_out"],
                                "properties": {"logged_out": {"const": True}},
                                "additionalProperties": False,
                            },
                        ),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/status": {
                "get": {
                    "summary": "Per library: condition, counts, space saved; the last plan; config generation; gate.",
                    "security": BEARER,
                    "responses": {
                        "200": _ok(
                            "The agent's status.",
                            _fields(
                                "version",
                                "host",
                                "leader",
                                "started_at",
                                "uptime_seconds",
                                "config_generation",
                                "reload_error",
                                "libraries",
                                "plan",
                                "gate",
                                "running",
                            ),
                        ),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/system": {
                "get": {
                    "summary": "CPU, memory, load, archive disk, running encodes, gate verdict.",
                    "security": BEARER,
                    "responses": {
                        "200": _ok(
                            "The host and the encodes.",
                            _fields("cpu", "memory", "load", "archive", "max_jobs", "running", "gate"),
                        ),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/hosts": {
                "get": {
                    "summary": "The hosts sharing the store, as each last reported itself, and which one plans.",
                    "security": BEARER,
                    "responses": {
                        "200": _ok(
                            "The hosts, by name.",
                            {
                                "type": "object",
                                "required": ["hosts", "leader", "late_after_seconds"],
                                "properties": {
                                    "hosts": {"type": "array", "items": {"$ref": "#/components/schemas/Host"}},
                                    "leader": {"$ref": "#/components/schemas/Leader"},
                                    "late_after_seconds": {"type": "integer", "description": "3 leases."},
                                },
                                "additionalProperties": False,
                            },
                        ),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/history": {
                "get": {
                    "summary": "Per day: encodes, failures, bytes saved, queue length; and the last encodes.",
                    "description": (
                        "Days are the agent host's local calendar days. `daily` has one entry per day of the `days` "
                        "that end today, oldest first (a day with nothing recorded has zeros and a null queue); "
                        f"`recent` the newest {RECENT_LIMIT} encodes and failures of those days, newest first."
                    ),
                    "security": BEARER,
                    "parameters": [
                        {
                            "name": "days",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "default": DEFAULT_DAYS},
                            "description": "How many days, ending today.",
                        }
                    ],
                    "responses": {
                        "200": _ok(
                            "The days and the recent encodes.",
                            {
                                "type": "object",
                                "required": ["days", "today", "utc_offset", "daily", "recent"],
                                "properties": {
                                    "days": {"type": "integer"},
                                    "today": {"type": "string", "format": "date"},
                                    "utc_offset": {"type": "string", "description": "The zone the days are in."},
                                    "daily": {"type": "array", "items": {"$ref": "#/components/schemas/HistoryDay"}},
                                    "recent": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/HistoryEvent"},
                                    },
                                },
                                "additionalProperties": False,
                            },
                        ),
                        "400": _error("days is not a whole number from 1 to 366."),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/jobs": {
                "get": {
                    "summary": "Jobs, newest first, a page at a time.",
                    "description": (
                        "A keyset page: the jobs below the cursor's id, read from an index in id order, so a "
                        "page costs the same at a million jobs as at ten. Following next_cursor until it is "
                        "null shows every job that existed when the walk began exactly once, in a stable "
                        "order; jobs queued meanwhile are newer than the cursor and show on the next walk."
                    ),
                    "security": BEARER,
                    "parameters": [
                        {
                            "name": "state",
                            "in": "query",
                            "schema": {"enum": ["queued", "running", "done", "failed", "dead", "cancelled"]},
                        },
                        {
                            "name": "library",
                            "in": "query",
                            "schema": {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": 64},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": 50},
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "schema": {"type": "string", "pattern": CURSOR_PATTERN, "minLength": 1, "maxLength": 18},
                            "description": "next_cursor of the previous page (a job id as text).",
                        },
                    ],
                    "responses": {
                        "200": _ok(
                            "A page of jobs.",
                            {
                                "type": "object",
                                "required": ["jobs", "next_cursor"],
                                "properties": {
                                    "jobs": {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                                    "next_cursor": {
                                        "oneOf": [{"type": "null"}, {"type": "string", "pattern": CURSOR_PATTERN}]
                                    },
                                },
                                "additionalProperties": False,
                            },
                        ),
                        "400": _error("A parameter is not valid."),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/jobs/{id}": {
                "get": {
                    "summary": "One job, with progress, attempts, error and the tail of HandBrakeCLI's stderr.",
                    "security": BEARER,
                    "parameters": [_JOB_ID],
                    "responses": {
                        "200": _ok("The job.", {"$ref": "#/components/schemas/Job"}),
                        "400": _error("The id is not a positive whole number."),
                        "404": _error("No such job."),
                        **_AUTH_ERRORS,
                    },
                }
            },
            "/api/jobs/{id}/retry": _job_action("Queue a dead, failed or cancelled job again (admin)."),
            "/api/jobs/{id}/cancel": _job_action("Cancel a queued, running or failed job (admin)."),
            "/api/jobs/{id}/priority": _job_action(
                "Move a queued or failed job to the front of the queue, before every library's jobs; a failed "
                "job's backoff is waived (admin)."
            ),
            "/api/libraries/{name}/pause": _library_action("Hold a library's queue (admin); kept across restarts."),
            "/api/libraries/{name}/resume": _library_action(
                "Let a paused library's jobs run again (admin); also lifts the hold of a library since removed "
                "from the config."
            ),
            "/api/scan": {
                "post": {
                    "summary": "Run a reconcile pass now (admin).",
                    "security": BEARER,
                    "responses": {
                        "202": _ok(
                            "The pass is requested.",
                            {
                                "type": "object",
                                "required": ["scan"],
                                "properties": {"scan": {"const": "requested"}},
                                "additionalProperties": False,
                            },
                        ),
                        **_ADMIN_ERRORS,
                    },
                }
            },
            "/api/config": {
                "get": {
                    "summary": "The config in force, secrets redacted (admin).",
                    "security": BEARER,
                    "responses": {
                        "200": _ok("The config and its generation.", _fields("generation", "config")),
                        **_ADMIN_ERRORS,
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "The status page (HTML; it logs in with /api/auth/login). No token.",
                    "responses": {"200": {"description": "The page.", "content": {"text/html": {}}}},
                }
            },
            "/static/{name}": {
                "get": {
                    "summary": "The status page's script and style sheet. No token.",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"enum": sorted(ASSETS)},
                            "description": "File name; no other is served.",
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The file.",
                            "content": {"text/css": {}, "text/javascript": {}},
                        },
                        "404": _error("No such file."),
                    },
                }
            },
            "/api/realtime": {
                "get": {
                    "summary": (
                        'WebSocket of job changes, progress, host samples and status hints. Send {"token": ...} first.'
                    ),
                    "parameters": [
                        {
                            "name": "token",
                            "in": "query",
                            "schema": {"type": "string"},
                            "description": "For clients that cannot send a first message; it may be logged.",
                        },
                        *_WEBSOCKET_HANDSHAKE,
                    ],
                    "responses": {
                        "101": {"description": "Switching to the WebSocket protocol."},
                        "400": _error("Not a WebSocket handshake."),
                    },
                }
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())
