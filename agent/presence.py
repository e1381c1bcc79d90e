"""What this agent tells the other hosts about itself, every lease/3 (the `hosts` table).

Why: an operator looking at any host must see every host sharing the store, which hb2r and
HandBrakeCLI each runs, which libraries each can read now (a host whose share dropped stands
out) and how many encodes each runs. `readable_libraries` touches the disk (an NFS mount that
hangs would hang it): the agent calls it in a thread.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import timedelta

from agent import __version__
from agent.config.models import Config
from agent.store.hosts import HostReport, HostRow

# A host not seen for this many leases is late: it has missed several reports (each lease/3), not one.
LATE_AFTER_LEASES = 3


def readable_libraries(config: Config) -> tuple[str, ...]:
    """Return the configured libraries whose source folder this host can list now."""
    found = []
    for library in config.libraries:
        try:
            if os.path.isdir(library.source) and os.access(library.source, os.R_OK | os.X_OK):
                found.append(library.name)
        except OSError:
            continue
    return tuple(found)


def host_report(
    config: Config, *, handbrake_version: str | None, libraries: tuple[str, ...], running_jobs: int
) -> HostReport:
    """Given what the agent knows now, return its row for the `hosts` table."""
    return HostReport(
        name=config.host.name,
        version=__version__,
        handbrake_version=handbrake_version,
        libraries=libraries,
        running_jobs=running_jobs,
    )


def late_after(lease: timedelta) -> timedelta:
    """Return how long a host may go unseen before it counts as late (3 leases)."""
    return lease * LATE_AFTER_LEASES


def late_hosts(hosts: Sequence[HostRow], *, lease: timedelta) -> list[HostRow]:
    """Given the hosts as the store lists them, return those not seen for 3 leases, by name."""
    limit = late_after(lease).total_seconds()
    return [host for host in hosts if host.seen_seconds_ago > limit]
