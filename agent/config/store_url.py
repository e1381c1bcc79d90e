"""Where the state lives: `store.url`, read and shown without ever showing a password.

`sqlite` (the default) keeps the state in `<paths.state_dir>/hb2r.db`, for one host.
`postgresql://user[:password]@host[:port]/database[?options]` (or `postgres://`) names a
PostgreSQL database that several hosts share. The password is better kept out of the URL:
`store.password_file` names a file holding it, or libpq's own `PGPASSWORD`/`~/.pgpass` apply.
Every message and every shown config carries the URL with its password replaced: the one in
the user part and a `password=` option in the query (libpq takes both), and `hide_secrets`
takes a password out of any other text (a driver's error message), as written, %-encoded or
decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, quote, unquote, urlencode, urlsplit

SQLITE = "sqlite"
POSTGRES_SCHEMES = ("postgresql", "postgres")
HIDDEN = "<redacted>"


@dataclass(frozen=True)
class PostgresUrl:
    """The parts of a PostgreSQL URL that messages may name (never the password)."""

    host: str
    port: int
    database: str
    user: str | None
    has_password: bool


def redact_url(url: str) -> str:
    """Return url with the password (in the user part or a `password=` option) replaced, for messages."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return HIDDEN if "@" in url or "password" in url.lower() else url
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.username or ''}:{HIDDEN}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if "password" in query.lower():
        options = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(key, HIDDEN if key.lower() == "password" else value) for key, value in options], safe="<>")
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return SplitResult(parts.scheme, netloc, parts.path, query, parts.fragment).geturl()


def url_passwords(url: str) -> tuple[str, ...]:
    """Return the passwords url carries (user part, `password=` options), decoded; none if it cannot be read."""
    try:
        parts = urlsplit(url)
        found = [unquote(parts.password)] if parts.password else []
        found += [value for key, value in parse_qsl(parts.query) if key.lower() == "password" and value]
    except ValueError:
        return ()
    return tuple(found)


def hide_secrets(text: str, *secrets: str | None) -> str:
    """Return text with every secret replaced, whether written as it is, %-encoded or %-decoded."""
    for secret in sorted({secret for secret in secrets if secret}, key=len, reverse=True):
        for form in dict.fromkeys((secret, quote(secret, safe=""), unquote(secret))):
            if form:
                text = text.replace(form, HIDDEN)
    return text


def parse_postgres_url(url: str) -> PostgresUrl:
    """Given a postgresql:// URL, return its parts, or raise ValueError naming what is wrong (password hidden)."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port or 5432
    except ValueError as error:
        raise ValueError(f"store.url {shown!r} is not a valid URL: {_hide(str(error), url)}") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise ValueError(f"store.url must be 'sqlite' or a postgresql://user@host/database URL, got {shown!r}")
    if not parts.hostname:
        raise ValueError(f"store.url {shown!r} names no host: write postgresql://user@host[:port]/database")
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ValueError(f"store.url {shown!r} names no database: write postgresql://user@host[:port]/database")
    return PostgresUrl(
        host=parts.hostname,
        port=port,
        database=database,
        user=unquote(parts.username) if parts.username else None,
        has_password=parts.password is not None
        or any(key.lower() == "password" for key, _ in parse_qsl(parts.query, keep_blank_values=True)),
    )


def _hide(text: str, url: str) -> str:
    return hide_secrets(text, *url_passwords(url))
