"""`hb2r hosts` as a table a person reads: one row per host sharing the store, then who leads.

Times are the database's (`agent.store.hosts`): "12 s ago" is measured on its clock, so a
host whose own clock is wrong still shows right. A host not seen for 3 leases is marked
`(late)`: it stopped reporting (dead, frozen, cut off) and /health names it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from agent.presence import late_after, late_hosts
from agent.quoting import shown
from agent.store.hosts import HostRow
from agent.store.leader import Leadership


def hosts_table(hosts: Sequence[HostRow], *, leader: Leadership | None, lease: timedelta) -> str:
    """Return the hosts as an aligned table with a summary line below it (the leader marked `*`)."""
    late = {host.name for host in late_hosts(hosts, lease=lease)}
    header = ("NAME", "VERSION", "HANDBRAKE", "LIBRARIES", "LAST SEEN", "RUNNING")
    rows = [header] + [
        (
            shown(host.name) + ("*" if leader is not None and leader.host == host.name else ""),
            shown(host.version),
            shown(host.handbrake_version or "-"),
            shown(",".join(host.libraries) or "-"),
            _seen(host, late=host.name in late),
            str(host.running_jobs),
        )
        for host in hosts
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    lines = [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[-1]]).rstrip()
        for row in rows
    ]
    summary = [f"{len(hosts)} host{'' if len(hosts) == 1 else 's'}"]
    if leader is not None:
        summary.append(f"* leads the planning (epoch {leader.epoch})")
    else:
        summary.append("no host leads the planning now")
    if late:
        seconds = int(late_after(lease).total_seconds())
        summary.append(f"{len(late)} not seen for 3 leases ({seconds} s): {', '.join(sorted(late))}")
    lines.append("; ".join(summary))
    return "\n".join(lines) + "\n"


def _seen(host: HostRow, *, late: bool) -> str:
    if late:
        return f"{datetime.fromisoformat(host.last_seen):%Y-%m-%d %H:%M:%S} UTC (late)"
    return f"{int(host.seen_seconds_ago)} s ago"
