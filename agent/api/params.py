"""Reading and checking what a request sends: path parts, query strings, JSON bodies (pydantic).

The patterns and bounds here are the ones the OpenAPI document states (agent/api/openapi.py
imports them), so that what the document calls valid is exactly what is accepted.

A page cursor is the id of the last job of the previous page, as decimal text: the next page
holds the jobs before it. It is written like a job id, so it has a plain pattern a client can
check; it stays a string so that its form may change one day without the type changing.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from agent.api.errors import ApiError, bad_request, describe_validation
from agent.api.listener import BODY_TIMEOUT_SECONDS

Model = TypeVar("Model", bound=BaseModel)

JOB_ID_PATTERN = r"^[1-9][0-9]{0,17}$"  # up to 18 digits: always within SQLite's 64-bit integers
MAX_JOB_ID = 10**18 - 1
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CURSOR_PATTERN = JOB_ID_PATTERN
_JOB_ID = re.compile(JOB_ID_PATTERN)
_NAME = re.compile(NAME_PATTERN)


def job_id(request: web.Request) -> int:
    """Return the {id} path part as a job id; raise a 400 ApiError unless it is a positive integer."""
    raw = request.match_info["id"]
    if not _JOB_ID.fullmatch(raw):  # fullmatch: `$` would let a trailing newline through
        raise bad_request(f"job id must be a positive whole number, got {raw[:40]!r}")
    return int(raw)


def library_name(request: web.Request) -> str:
    raw = request.match_info["name"]
    if not _NAME.fullmatch(raw):
        raise bad_request(f"library name must be letters, digits, '_', '.' and '-', got {raw[:40]!r}")
    return raw


def query(request: web.Request, model: type[Model]) -> Model:
    """Validate the query string with model; raise a 400 ApiError naming every bad parameter."""
    values: dict[str, Any] = {}
    for key in request.query:
        found = request.query.getall(key)
        if len(found) > 1:
            raise bad_request(f"query parameter {key!r} is given {len(found)} times")
        values[key] = found[0]
    try:
        return model.model_validate(values)
    except ValidationError as error:
        raise bad_request(describe_validation(error.errors())) from None


async def body(request: web.Request, model: type[Model]) -> Model:
    """Read and validate a JSON body; raise a 400 ApiError if it is not JSON or not valid, a 408
    if it does not arrive within BODY_TIMEOUT_SECONDS (a slow client must not hold a connection)."""
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            raw = await request.read()
    except TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {BODY_TIMEOUT_SECONDS:g} s") from None
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deeply
        raise bad_request("the body must be JSON") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise bad_request(describe_validation(error.errors())) from None


def encode_cursor(before_id: int) -> str:
    return str(before_id)


def decode_cursor(cursor: str) -> int:
    """Return the job id a cursor continues before; raise ValueError if it is not one hb2r made."""
    if not _JOB_ID.fullmatch(cursor):  # fullmatch: `$` would let a trailing newline through
        raise ValueError("cursor is not valid; use next_cursor from the previous page")
    return int(cursor)
