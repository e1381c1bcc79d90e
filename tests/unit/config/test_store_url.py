"""A store URL is shown everywhere (messages, `hb2r validate --show`, logs) without its password,
whichever way the password was written into it."""

from __future__ import annotations

import pytest

from agent.config.store_url import hide_secrets, parse_postgres_url, redact_url, url_passwords


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "postgresql://hb2r:s3cret@db.lan:5433/hb2r?sslmode=require",
            "postgresql://hb2r:<redacted>@db.lan:5433/hb2r?sslmode=require",
            id="password-in-the-user-part",
        ),
        pytest.param("postgresql://hb2r@db.lan/hb2r", "postgresql://hb2r@db.lan/hb2r", id="no-password-unchanged"),
        pytest.param(
            "postgresql://hb2r:p%40ss%2Fw@db.lan/hb2r",
            "postgresql://hb2r:<redacted>@db.lan/hb2r",
            id="a-percent-encoded-password",
        ),
        pytest.param(
            "postgresql://hb2r@db.lan/hb2r?sslmode=require&password=s3cret",
            "postgresql://hb2r@db.lan/hb2r?sslmode=require&password=<redacted>",
            id="password-as-a-query-option",
        ),
        pytest.param("postgresql://hb2r:s3cret@db.lan:99999999999999999999[/x", "<redacted>", id="unparsable"),
        pytest.param("sqlite", "sqlite", id="sqlite"),
    ],
)
def test_a_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_password_is_taken_out_of_any_text_in_every_spelling() -> None:
    url = "postgresql://hb2r:p%40ss%2Fw@db.lan/hb2r?password=other"
    text = "FATAL: password p@ss/w refused (sent as p%40ss%2Fw); also other"

    assert url_passwords(url) == ("p@ss/w", "other")
    assert (
        hide_secrets(text, *url_passwords(url))
        == "FATAL: password <redacted> refused (sent as <redacted>); also <redacted>"
    )


def test_a_password_in_the_query_counts_as_a_password_in_the_url() -> None:
    assert parse_postgres_url("postgresql://hb2r@db.lan/hb2r?password=x").has_password
    assert not parse_postgres_url("postgresql://hb2r@db.lan/hb2r").has_password
