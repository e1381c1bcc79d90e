"""GET /api/hosts: every host sharing the store, as each last reported itself, and who plans.

Any host's API answers it from the shared store, so an operator can ask any of them. `late`
marks a host not seen for 3 leases (`agent.presence`), the one /health names; `leader` the
host whose turn it is to plan (`agent.store.leader`). Times are on the database's clock.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent.api.context import ApiContext, context_of
from agent.api.security import requires
from agent.presence import late_after, late_hosts
from agent.store.hosts import HostRow
from agent.store.leader import Leadership


@requires("user")
async def list_hosts(request: web.Request) -> web.Response:
    return web.json_response(hosts_view(context_of(request)))


def hosts_view(context: ApiContext) -> dict[str, Any]:
    store, lease = context.state.store, context.state.config.store.lease
    found = store.list_hosts()
    leader = store.leadership()
    late = {host.name for host in late_hosts(found, lease=lease)}
    return {
        "hosts": [host_view(host, late=host.name in late, leader=leader) for host in found],
        "leader": None
        if leader is None
        else {"host": leader.host, "epoch": leader.epoch, "expires_at": leader.expires_at},
        "late_after_seconds": int(late_after(lease).total_seconds()),
    }


def host_view(host: HostRow, *, late: bool, leader: Leadership | None) -> dict[str, Any]:
    return {
        "name": host.name,
        "version": host.version,
        "handbrake_version": host.handbrake_version,
        "libraries": list(host.libraries),
        "running_jobs": host.running_jobs,
        "last_seen": host.last_seen,
        "seen_seconds_ago": round(host.seen_seconds_ago, 1),
        "late": late,
        "leader": leader is not None and leader.host == host.name,
    }


def leader_view(leader: Leadership | None) -> dict[str, Any] | None:
    return None if leader is None else {"host": leader.host, "epoch": leader.epoch}
