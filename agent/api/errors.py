"""Errors as JSON: `{"error": CODE, "message": TEXT}`, never a stack trace or a path inside hb2r."""

from __future__ import annotations

from typing import Any

from aiohttp import web

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


def error_response(status: int, message: str, *, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": CODES.get(status, "error"), "message": message}, status=status, headers=headers)


class ApiError(Exception):
    """Raised by a handler: the error middleware answers with this status and message."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    return ApiError(404, message)


def describe_validation(errors: list[Any]) -> str:
    """Return pydantic errors as one sentence naming each bad field."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "body"
        parts.append(f"{where}: {error.get('msg', 'is not valid')}")
    return "; ".join(parts)
