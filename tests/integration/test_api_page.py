"""GET / and /static/{name}: the status page's files, on the real app (aiohttp's test client).

What a browser enforces is tested in a real one (tests/e2e/test_status_page.py); here, quickly:
the page needs no token, every answer has the security headers, only the packaged files are
served (hostile paths go over a raw socket, so no client tidies them first), and the HTML
has no inline script or style the CSP would have to allow.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from aiohttp import ClientResponse

from agent.api import page
from tests.support.api import Api

CSP_DIRECTIVES = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "frame-ancestors": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
}


def policy(response: ClientResponse) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in response.headers["Content-Security-Policy"].split(";"):
        name, *values = part.split()
        assert name not in directives, f"{name} twice"
        directives[name] = values
    return directives


def assert_security_headers(response: ClientResponse, *, host: str) -> None:
    directives = policy(response)
    for name, values in CSP_DIRECTIVES.items():
        assert directives[name] == values, name
    assert directives["connect-src"] == ["'self'", f"ws://{host}", f"wss://{host}"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-cache"


def host_of(api: Api) -> str:
    return f"{api.client.host}:{api.client.port}"


async def test_the_page_is_served_without_a_token_with_the_security_headers(api: Api) -> None:
    response = await api.client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html" and response.charset == "utf-8"
    assert_security_headers(response, host=host_of(api))
    html = await response.text()
    assert '<script src="/static/app.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/app.css">' in html


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
        ("uPlot.iife.min.js", "text/javascript"),
        ("uPlot.min.css", "text/css"),
    ],
)
async def test_the_script_and_style_sheet_are_served_with_the_headers_and_an_etag(
    api: Api, name: str, content_type: str
) -> None:
    response = await api.client.get(f"/static/{name}")
    assert response.status == 200
    assert response.content_type == content_type
    assert_security_headers(response, host=host_of(api))
    packaged = resources.files("agent").joinpath("static", name).read_bytes()
    assert await response.read() == packaged
    etag = response.headers["ETag"]
    again = await api.client.get(f"/static/{name}", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    assert again.headers["X-Content-Type-Options"] == "nosniff"
    stale = await api.client.get(f"/static/{name}", headers={"If-None-Match": '"something-older"'})
    assert stale.status == 200


@pytest.mark.parametrize(
    "name",
    ["index.html", "app.js.map", "APP.JS", "page.py", "nope.js", "app.js%00.txt", "%2e%2e%2fpyproject.toml"],
)
async def test_unknown_static_names_are_a_json_404(api: Api, name: str) -> None:
    response = await api.client.get(f"/static/{name}")
    assert response.status == 404
    assert (await response.json())["error"] == "not_found"


async def raw_get(api: Api, target: str) -> tuple[int, bytes]:
    """Send `GET target` exactly as written (no client normalizes it); return the status and body."""
    reader, writer = await asyncio.open_connection(api.client.host, api.client.port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {host_of(api)}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=5.0)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize(
    "target",
    [
        "/static/../pyproject.toml",
        "/static/../../pyproject.toml",
        "/static/..%2f..%2fpyproject.toml",
        "/static/%2e%2e/api/page.py",
        "/static/..\\api\\page.py",
        "/static/./app.js/..",
        "/static/",
        "/static",
        "/static/static/app.js",
        "/static/app.js/",
        "//static/app.js/../../api/page.py",
    ],
)
async def test_no_path_leaves_the_packaged_files_and_there_is_no_listing(api: Api, target: str) -> None:
    status, body = await raw_get(api, target)
    assert status == 404, (target, status, body[:200])
    for leak in (b"[project]", b"import ", b"<li>", b"Index of"):
        assert leak not in body, (target, leak)


async def test_a_hostile_host_header_cannot_add_to_the_policy(api: Api) -> None:
    for host in ("evil.example; script-src *", "a b", "x'y", ""):
        response = await api.client.get("/", headers={"Host": host})
        assert response.status == 200
        directives = policy(response)
        assert directives["connect-src"] == ["'self'"], host
        assert directives["script-src"] == ["'self'"], host


def test_the_html_has_no_inline_script_style_or_handler_and_loads_nothing_from_elsewhere() -> None:
    html = page.asset(page.INDEX).body.decode()
    assert re.findall(r"<script\b[^>]*>", html) == [
        '<script src="/static/uPlot.iife.min.js" defer>',  # the vendored chart library (agent/static/)
        '<script src="/static/app.js" defer>',
    ]
    assert "<style" not in html
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html, flags=re.IGNORECASE)
    assert not re.search(r"(?:src|href)\s*=\s*\"(?:https?:)?//", html)
    script = page.asset("app.js").body.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert "localStorage" not in script and "sessionStorage" in script
    assert "?token=" not in script
    css = page.asset("app.css").body.decode()
    assert "@import" not in css and "url(" not in css


async def test_the_page_and_files_are_answered_to_get_and_head_only(api: Api) -> None:
    for path in ("/", "/static/app.js"):
        head = await api.client.head(path)
        assert head.status == 200 and await head.read() == b""
        assert head.headers["X-Frame-Options"] == "DENY"
        response = await api.client.post(path, headers=await api.admin())
        assert response.status == 405
        assert response.headers["Allow"] == "GET,HEAD"
    assert (await api.client.head("/static/nope.js")).status == 404


def test_every_served_file_and_the_chart_librarys_licence_are_in_the_package_data() -> None:
    """A wheel holds agent/static/ only as far as pyproject's package-data says: a file left out
    would be served by a checkout and missing (a 500) from an installed hb2r."""
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["agent"]
    shipped = [page.INDEX, *page.ASSETS, "uPlot.LICENSE"]
    for name in shipped:
        assert resources.files("agent").joinpath("static", name).is_file(), name
        assert any(fnmatch.fnmatch(f"static/{name}", pattern) for pattern in patterns), name
    # The vendored uPlot is the version the README and the page name, with its MIT licence beside it.
    script = page.asset("uPlot.iife.min.js").body.decode()
    assert script.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    licence = resources.files("agent").joinpath("static", "uPlot.LICENSE").read_text()
    assert "The MIT License" in licence and "Leon Sorokin" in licence
