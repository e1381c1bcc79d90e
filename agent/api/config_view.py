"""GET /api/config (admin): the config in force, after ${VAR} expansion and defaults, secrets redacted."""

from __future__ import annotations

from aiohttp import web

from agent.api.context import context_of
from agent.api.security import requires
from agent.config.show import effective_data


@requires("admin")
async def config(request: web.Request) -> web.Response:
    state = context_of(request).state
    return web.json_response({"generation": state.config_generation, "config": effective_data(state.config)})
