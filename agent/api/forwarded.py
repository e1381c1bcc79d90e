"""Who the client is behind a reverse proxy: `X-Forwarded-For`, believed only from trusted proxies.

Why: the login limits and the audit log key on the client's address. Behind a reverse proxy
every request comes from the proxy, so all clients would share one limit; but the header is
written by whoever sends the request, so believing it from anyone would let a client pick a
new address for every attempt. So the header counts only when the TCP peer is in
`server.trusted_proxies`, and then only as far as trusted proxies vouch for it: each proxy
appends the address it saw, so the hops are read from the right, trusted proxies are passed
over, and the first other hop is the client; anything to its left was written by the client
and is ignored. A hop that is not an IP address ends the walk at the last proxy seen.

Pure: no aiohttp here; the middleware passes the peer and the header's values.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "unknown"


def client_address(*, peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """Given the TCP peer's address, the X-Forwarded-For header values in order and the trusted
    proxies, return the client's address (UNKNOWN if there is no peer address)."""
    if peer is None:
        return UNKNOWN
    client = parse_address(peer)
    if client is None:
        return peer
    if not _is_trusted(client, trusted):
        return str(client)
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = parse_address(hop)
        if address is None:
            break
        client = address
        if not _is_trusted(address, trusted):
            break
    return str(client)


def parse_address(text: str) -> Address | None:
    """Given `1.2.3.4`, `2001:db8::1`, `[2001:db8::1]:443` or `1.2.3.4:443`, return the address
    (an IPv4-mapped IPv6 address as IPv4); None if it is none of these."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: Address, trusted: Sequence[Network]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)
