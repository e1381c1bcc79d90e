"""Who the client is, given the TCP peer, X-Forwarded-For and the trusted proxies: a decision table."""

from __future__ import annotations

import ipaddress

import pytest

from agent.api.forwarded import UNKNOWN, client_address

PROXIES = (ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("::1/128"))


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        pytest.param("192.0.2.5", [], "192.0.2.5", id="no-proxy-no-header"),
        pytest.param("192.0.2.5", ["198.51.100.1"], "192.0.2.5", id="a-header-from-an-untrusted-peer-is-ignored"),
        pytest.param("10.0.0.2", ["198.51.100.1"], "198.51.100.1", id="a-trusted-proxy-names-the-client"),
        pytest.param("10.0.0.2", [], "10.0.0.2", id="a-trusted-proxy-without-header-is-the-client"),
        pytest.param(
            "10.0.0.2", ["203.0.113.9, 198.51.100.1"], "198.51.100.1", id="hops-the-client-made-up-are-ignored"
        ),
        pytest.param("10.0.0.2", ["198.51.100.1, 10.0.0.3"], "198.51.100.1", id="a-chain-of-trusted-proxies"),
        pytest.param("10.0.0.2", ["198.51.100.1", "10.0.0.3"], "198.51.100.1", id="the-header-given-twice"),
        pytest.param("10.0.0.2", ["10.0.0.4, 10.0.0.3"], "10.0.0.4", id="all-hops-trusted-the-leftmost"),
        pytest.param("10.0.0.2", ["garbage, 10.0.0.3"], "10.0.0.3", id="a-hop-that-is-no-address-ends-the-walk"),
        pytest.param("10.0.0.2", ["198.51.100.1:4711"], "198.51.100.1", id="an-ipv4-hop-with-a-port"),
        pytest.param("::1", ["[2001:db8::7]:443"], "2001:db8::7", id="an-ipv6-hop-with-a-port"),
        pytest.param("::ffff:10.0.0.2", ["198.51.100.1"], "198.51.100.1", id="an-ipv4-mapped-peer"),
        pytest.param(None, ["198.51.100.1"], UNKNOWN, id="no-peer-address"),
    ],
)
def test_the_client(peer: str | None, forwarded_for: list[str], client: str) -> None:
    assert client_address(peer=peer, forwarded_for=forwarded_for, trusted=PROXIES) == client


def test_without_trusted_proxies_the_header_never_counts() -> None:
    assert client_address(peer="10.0.0.2", forwarded_for=["198.51.100.1"], trusted=()) == "10.0.0.2"
