"""The body of `hb2r hosts CONFIG`: the hosts sharing the config's store, read without writing.

Like `hb2r jobs`, it opens the store read-only (`read_state`), so it works while
agents run and makes nothing where there is no state yet. Exit 0 whatever the hosts' health:
it reports; /health and the metrics are what alerting watches.
"""

from __future__ import annotations

import sys

from agent.cli_output import EXIT_OK, fail, warn
from agent.config.models import Config
from agent.render_hosts import hosts_table
from agent.store.choose import no_state_yet, read_state
from agent.store.db import StateError


def list_hosts(config: Config) -> int:
    """Given the config, print its store's hosts; return the exit code."""
    try:
        state = read_state(config, lambda store: (store.list_hosts(), store.leadership()), warn=warn)
    except StateError as error:
        return fail(error)
    if state is None:
        print(f"No hosts: {no_state_yet(config)}.")
        return EXIT_OK
    found, leader = state
    if not found:
        print("No hosts have reported yet: each running agent reports every lease/3.")
    else:
        sys.stdout.write(hosts_table(found, leader=leader, lease=config.store.lease))
    return EXIT_OK
