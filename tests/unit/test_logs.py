"""Secrets never reach a log line; lines are JSON when not on a terminal."""

from __future__ import annotations

import io
import json

import pytest

from agent import logs

BCRYPT = "$2b$12$EjNJyDau5vaz3Rw4eyFU3.CgVEnpVjQQ1gikg1nhkSP/nLG5YgekG"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXBhcnQ"


def log_line(**fields: object) -> tuple[str, dict[str, object]]:
    stream = io.StringIO()
    logs.configure(stream=stream, json=True)
    logs.get_logger().info("event", **fields)
    text = stream.getvalue()
    return text, json.loads(text)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"password_hash": BCRYPT}, id="a-password-hash-field-is-redacted"),
        pytest.param({"user": {"name": "admin", "password_hash": BCRYPT}}, id="a-nested-hash-is-redacted"),
        pytest.param({"error": f"login failed for hash {BCRYPT}"}, id="a-hash-inside-a-message-is-redacted"),
        pytest.param({"headers": {"Authorization": f"Bearer {JWT}"}}, id="an-authorization-header-is-redacted"),
        pytest.param({"url": f"/api/ws?token={JWT}"}, id="a-jwt-in-a-url-is-redacted"),
        pytest.param({"jwt_secret": "s3cr3t-value-xyz"}, id="the-jwt-secret-is-redacted"),
        pytest.param({"items": [JWT, "ok"]}, id="a-jwt-in-a-list-is-redacted"),
        pytest.param(
            {"error": "cannot reach postgresql://hb2r:s3cr3t-value-xyz@db.lan:5432/hb2r"},
            id="a-database-password-in-a-url-is-redacted",
        ),
    ],
)
def test_secrets_never_reach_the_log(fields: dict[str, object]) -> None:
    text, _ = log_line(**fields)
    for secret in (BCRYPT, JWT, "s3cr3t-value-xyz"):
        assert secret not in text
    assert logs.REDACTED in text


def test_ordinary_fields_are_kept_as_json() -> None:
    _, line = log_line(job=7, library="tv", path="Show/S01E01.mkv")
    assert line["event"] == "event"
    assert line["job"] == 7
    assert line["path"] == "Show/S01E01.mkv"
    assert line["level"] == "info"
    assert "timestamp" in line


def test_a_terminal_gets_readable_lines_not_json() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    logs.configure(stream=stream)
    logs.get_logger().info("job started", library="tv")
    text = stream.getvalue()
    assert "job started" in text
    assert "library=tv" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
