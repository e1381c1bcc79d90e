"""The body of `hb2r hosts CONFIG`: the hosts sharing the config's store, read without writing.

Like `hb2r jobs`, it opens the store read-only (`readonly_store_for`), so it works while
agents run and makes nothing where there is no state yet. Exit 0 whatever the hosts' health:
it reports; /health and the metrics are what alerting watches.
"""

from __future__ import annotations

import sys

from agent.cli_jobs import store_failure
from agent.config.models import Config
from agent.render_hosts import hosts_table
from agent.store import StoreError
from agent.store.choose import no_state_yet, readonly_store_for, store_location
from agent.store.db import StateError
from agent.store.hosts import HostRow
from agent.store.leader import Leadership

EXIT_OK = 0
EXIT_ERROR = 1


def list_hosts(config: Config) -> int:
    """Given the config, print its store's hosts; return the exit code."""
    found: list[HostRow] = []
    leader: Leadership | None = None
    try:
        store = readonly_store_for(config, warn=_warn)
        if store is not None:
            try:
                found = store.list_hosts()
                leader = store.leadership()
            finally:
                store.close()
    except StateError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except StoreError as error:
        print(f"error: {store_failure(store_location(config), error)}", file=sys.stderr)
        return EXIT_ERROR
    if store is None:
        print(f"No hosts: {no_state_yet(config)}.")
    elif not found:
        print("No hosts have reported yet: each running agent reports every lease/3.")
    else:
        sys.stdout.write(hosts_table(found, leader=leader, lease=config.store.lease))
    return EXIT_OK


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)
