"""Fixtures shared by the end-to-end tests: agents started as `hb2r run` processes, alone or as
several hosts in network namespaces sharing one PostgreSQL (tests/support/multihost.py).

`agents`, which starts one `hb2r run` process, is in tests/conftest.py (for every folder)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.multihost import Host, Network, SharedStore, network_run
from tests.support.postgres import PostgresCluster, start_cluster, stop_cluster

# Several hosts on one machine (see tests/support/multihost.py): a network of namespaces, a PostgreSQL
# cluster on its bridge, and hosts that each run `hb2r run` in their own namespace.


@pytest.fixture
def network() -> Iterator[Network]:
    """A bridge on a private 10.213.N.0/24 with no host yet; everything removed at the end."""
    with network_run() as made:
        yield made


@pytest.fixture
def network_cluster(network: Network) -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL on 127.0.0.1 and on the network's gateway, password logins from its /24."""
    cluster, data = start_cluster(listen=[network.gateway], clients=[network.cidr])
    try:
        yield cluster
    finally:
        stop_cluster(cluster, data)


@pytest.fixture
def shared_store(network: Network, network_cluster: PostgresCluster) -> SharedStore:
    """An empty database for the hosts: its URL names the gateway and carries no password."""
    local_url = network_cluster.create_database("hb2r_hosts")
    return SharedStore(
        url=f"postgresql://hb2r@{network.gateway}:{network_cluster.port}/hb2r_hosts",
        password=network_cluster.password,
        local_url=local_url,
        admin_url=network_cluster.admin_url.rsplit("/", 1)[0] + "/hb2r_hosts",
    )


@pytest.fixture
def hosts(network: Network, shared_store: SharedStore, tmp_path: Path) -> Iterator[Callable[..., Host]]:
    """Make hosts of the shared library tmp_path/library and archive tmp_path/archive; stop them at the end."""
    made: list[Host] = []
    for folder in ("library", "archive"):
        (tmp_path / folder).mkdir(exist_ok=True)

    def make(name: str, *, lease: str = "3s") -> Host:
        host = Host(
            network=network,
            name=name,
            root=tmp_path / "hosts" / name,
            library=tmp_path / "library",
            archive=tmp_path / "archive",
            store=shared_store,
            lease=lease,
        )
        made.append(host)
        return host

    yield make
    for cut in list(network.cut_hosts):  # an agent cut off from its store would stop slowly
        network.restore(cut)
    for host in made:
        host.stop()
