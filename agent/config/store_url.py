"""Where the state lives: `store.url`, read and shown without ever showing a password.

`sqlite` (the default) keeps the state in `<paths.state_dir>/hb2r.db`, for one host.
`postgresql://user[:password]@host[:port]/database[?options]` (or `postgres://`) names a
PostgreSQL database that several hosts share. The password is better kept out of the URL:
`store.password_file` names a file holding it, or libpq's own `PGPASSWORD`/`~/.pgpass` apply.
Every message and every shown config carries the URL with its password replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

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
    """Return url with the password (if any) replaced, for messages and shown configs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return HIDDEN if "@" in url else url
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return SplitResult(parts.scheme, f"{user}:{HIDDEN}@{host}", parts.path, parts.query, parts.fragment).geturl()


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
        has_password=parts.password is not None,
    )


def _hide(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    return text.replace(password, HIDDEN) if password else text
