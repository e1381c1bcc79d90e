"""Structured logging: JSON lines for journald and log shippers, readable lines on a terminal.

Secrets never reach a log line. Values under secret-sounding keys are replaced, and so is
anything in any string that looks like a bcrypt hash, a JWT or an `Authorization` header
value, wherever it hides (an error message, a URL, a nested dict).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

REDACTED = "[redacted]"
SECRET_KEYS = frozenset(
    {"password", "password_hash", "secret", "jwt_secret", "token", "access_token", "authorization", "cookie"}
)
_SECRET_TEXT = re.compile(
    r"\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}"  # bcrypt hash
    r"|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"  # JWT
    r"|(?i:bearer)\s+[A-Za-z0-9._~+/=-]+"  # Authorization: Bearer ...
    r"|(?<=://)[^/\s:@]*:[^/\s@]+(?=@)"  # user:password@ in a URL (store.url)
)


def redact(value: Any) -> Any:
    """Return value with secrets replaced, looking inside dicts, lists and strings."""
    if isinstance(value, str):
        return _SECRET_TEXT.sub(REDACTED, value)
    if isinstance(value, dict):
        return {key: REDACTED if _is_secret_key(key) else redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(item) for item in value)
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and (
        key.lower() in SECRET_KEYS or key.lower().endswith(("_secret", "_token", "_password"))
    )


def _redact_processor(logger: object, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(event.items()):
        event[key] = REDACTED if _is_secret_key(key) else redact(value)
    return event


def configure(*, level: str = "info", stream: TextIO | None = None, json: bool | None = None) -> None:
    """Set up structlog: JSON lines unless `stream` is a terminal (or `json` says otherwise)."""
    stream = stream or sys.stderr
    use_json = not stream.isatty() if json is None else json
    renderer: Any = structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name) if name else structlog.get_logger()
