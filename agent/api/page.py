"""GET / and GET /static/{name}: the status page, served by the agent itself.

An operator should see what the agent is doing without installing anything else: one
page, plain HTML, CSS and JavaScript shipped in the package (agent/static/), no build
step and nothing loaded from another host. The page needs no token to be fetched — it
holds no data; it logs in with /api/auth/login and reads the API like any client.

Only the names in ASSETS are served (a lookup in a fixed table, so no directory listing
and no path traversal), read once through importlib.resources so a wheel or a zip works.
Every answer carries a strict Content-Security-Policy (scripts and styles only from this
host, no inline code, no framing, no <base>, forms post only here), `nosniff`,
`Referrer-Policy: no-referrer` and `X-Frame-Options: DENY` for browsers without CSP
frame-ancestors. `Cache-Control: no-cache` with an ETag: after an upgrade the browser
asks again and gets the new files; otherwise a 304.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from importlib import resources

from aiohttp import web

from agent.api.errors import not_found

INDEX = "index.html"
ASSETS = {
    "app.css": "text/css",
    "app.js": "text/javascript",
    # uPlot 1.6.32 (MIT, agent/static/uPlot.LICENSE) from the npm registry, for the history charts.
    "uPlot.iife.min.js": "text/javascript",
    "uPlot.min.css": "text/css",
}
# A Host header worth naming in connect-src: a name or address and a port, nothing that could
# end the directive (a browser sends exactly this; anything else gets 'self' alone).
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@functools.cache
def asset(name: str) -> Asset:
    """Return the packaged file agent/static/name (read once)."""
    body = resources.files("agent").joinpath("static", name).read_bytes()
    content_type = "text/html" if name == INDEX else ASSETS[name]
    return Asset(body=body, content_type=content_type, etag=f'"{hashlib.sha256(body).hexdigest()[:32]}"')


def content_security_policy(host: str | None) -> str:
    """Return the page's CSP. connect-src names this host's ws:/wss: besides 'self': CSP 3
    browsers match a same-origin WebSocket with 'self', older ones (Safari before 15.4) need it."""
    connect = "'self'"
    if host is not None and _HOST.match(host):
        connect += f" ws://{host} wss://{host}"
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"connect-src {connect}",
            "img-src 'self' data:",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        )
    )


def security_headers(request: web.Request) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(request.headers.get("Host")),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-cache",
    }


async def index(request: web.Request) -> web.Response:
    return _answer(request, asset(INDEX))


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise not_found("there is no such file")
    return _answer(request, asset(name))


def _answer(request: web.Request, found: Asset) -> web.Response:
    headers = {**security_headers(request), "ETag": found.etag}
    if found.etag in {tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")}:
        return web.Response(status=304, headers=headers)
    return web.Response(body=found.body, content_type=found.content_type, charset="utf-8", headers=headers)
