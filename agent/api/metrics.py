"""GET /metrics: Prometheus text format. No token (scrapers rarely carry one); it names
libraries and counts, nothing secret, and the service listens on loopback unless told otherwise."""

from __future__ import annotations

from aiohttp import web

from agent.api.context import context_of


async def metrics(request: web.Request) -> web.Response:
    body, content_type = context_of(request).metrics.render()
    return web.Response(body=body, headers={"Content-Type": content_type})
