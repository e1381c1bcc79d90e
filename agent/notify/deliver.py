"""One message to one Apprise URL, and what may be said about a URL: the only module that imports Apprise.

Apprise's `notify` blocks (it speaks HTTP, SMTP, ... itself): `deliver` is called in a thread
(`agent.notify.notifier`), one attempt per call; retrying is the caller's. The plugin is
called directly, not through `Apprise.notify`, so it runs in the calling thread and what it
logs can be told apart from another thread's sending.

URLs are secrets (an ntfy topic, a webhook's token, an SMTP password): nothing here returns,
logs or raises one. Apprise's own logger is silenced (it logs URLs at debug and some parts of
them in errors); the reason for a failure is taken from the warnings it logs while sending,
with every part of the URL hidden. A target is named by its place in the config and the
URL's scheme: `notify[0] (ntfy)`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from agent.config.store_url import hide_secrets

_APPRISE_LOG = logging.getLogger("apprise")
_APPRISE_LOG.propagate = False  # never to the root logger's handlers (nor logging's last resort)
_APPRISE_LOG.addHandler(logging.NullHandler())
MAX_REASON = 300


@dataclass(frozen=True)
class Delivery:
    sent: bool
    reason: str | None = None  # why not, the URL's parts hidden


def scheme_of(url: str) -> str:
    """Return url's scheme ('ntfy', 'json', ...), or '?' if it has none: the one part that is never secret."""
    scheme, found, _ = url.partition("://")
    return scheme.lower() if found and scheme.isascii() and scheme.replace("+", "").isalnum() else "?"


def target_name(index: int, url: str) -> str:
    return f"notify[{index}] ({scheme_of(url)})"


def url_problem(url: str) -> str | None:
    """Return why Apprise cannot use url (naming its scheme, never the rest), or None if it can."""
    if not url.strip():
        return "the URL is empty (is its ${VAR} set?)"
    if "://" not in url:
        return "this is not an Apprise URL like ntfy://host/topic or json://host:port/path"
    if _plugin(url) is None:
        return (
            f"this {scheme_of(url)}:// URL is not one Apprise understands (an unknown service, or a part it needs "
            "is missing or malformed); see Apprise's list of services for the form each URL takes"
        )
    return None


def deliver(url: str, *, title: str, body: str, severity: str) -> Delivery:
    """Send one message to url (blocking: call it in a thread); return whether it was sent and why not."""
    plugin = _plugin(url)
    if plugin is None:
        return Delivery(False, "Apprise does not understand the URL")
    capture = _Capture(threading.get_ident())
    _APPRISE_LOG.addHandler(capture)
    try:
        sent = bool(plugin.notify(body=body, title=title, notify_type=severity))
    except Exception as error:  # a plugin's bug must fail this delivery, not the notifier
        capture.lines.append(f"{type(error).__name__}: {error}")
        sent = False
    finally:
        _APPRISE_LOG.removeHandler(capture)
    if sent:
        return Delivery(True)
    reason = "; ".join(dict.fromkeys(capture.lines)) or "the service did not accept the message"
    return Delivery(False, _hide_url(reason, url)[:MAX_REASON])


def _plugin(url: str) -> Any:
    import apprise  # loading Apprise's ~190 plugins costs ~0.2 s: only where a URL is used

    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


class _Capture(logging.Handler):
    """Keeps the warnings Apprise logs in one thread (the one sending)."""

    def __init__(self, thread: int) -> None:
        super().__init__(logging.WARNING)
        self.thread = thread
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage().strip())


def _hide_url(text: str, url: str) -> str:
    """Return text with every part of url that could be secret (user, password, host, path, query values) hidden."""
    pieces: list[str | None]
    try:
        parts = urlsplit(url)
        pieces = [parts.username, parts.password, parts.hostname, parts.netloc, *parts.path.split("/")]
        pieces += [value for _, value in parse_qsl(parts.query)]
    except ValueError:
        pieces = [url.partition("://")[2]]
    secrets = [unquote(piece) for piece in pieces if piece and len(piece) >= 3]
    return hide_secrets(text, url, *secrets)
