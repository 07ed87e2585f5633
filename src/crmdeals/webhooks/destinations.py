"""Where a webhook may go: the destination policy, checked at every new connection.

A CRM's ``webhooksUri`` is chosen by whoever holds the account's key, so without a policy
the server would POST, with the account's crm key, to anything it can reach: its own
database, a cloud's metadata service, the operator's private network. Unless private
destinations are allowed (sandbox mode, ``CRMDEALS_WEBHOOKS_ALLOW_PRIVATE=1``), the host's
name is resolved, every address it resolves to must be public, and the connection goes to
one of the addresses checked: a second lookup could answer differently (DNS rebinding), and
a name that mixes public and private addresses is refused outright.
"""

import ipaddress
import socket
from ipaddress import IPv4Address, IPv6Address

import anyio

__all__ = ["DestinationRefused", "HostNotResolved", "is_public", "resolve_allowed"]

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
"""The well-known NAT64 prefix: a gateway would carry such an address to the IPv4 address
in its last 32 bits, so that address is the one to check."""


class DestinationRefused(Exception):
    """The destination policy refused the address: no connection was opened."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HostNotResolved(Exception):
    """The host's name could not be resolved to any address."""

    def __init__(self, host: str) -> None:
        self.reason = f"could not resolve {host}"
        super().__init__(self.reason)


def is_public(address: IPv4Address | IPv6Address) -> bool:
    """Whether ``address`` is a public unicast address, and so is any IPv4 address it
    carries (IPv4-mapped, 6to4, NAT64): not loopback, private, link-local, unspecified,
    shared (100.64.0.0/10), reserved or multicast."""
    if address.is_multicast or not address.is_global:
        return False
    if isinstance(address, IPv4Address):
        return True
    carried = [address.ipv4_mapped, address.sixtofour]
    if address in NAT64:
        carried.append(IPv4Address(int(address) & 0xFFFF_FFFF))
    return all(is_public(inner) for inner in carried if inner is not None)


async def resolve_allowed(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses of ``host`` to connect to, in the resolver's order of preference (a
    literal address resolves to itself). Raise ``HostNotResolved`` when there are none, and,
    unless ``allow_private``, ``DestinationRefused`` when any of them is not public."""
    try:
        found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:  # gaierror; a name IDNA cannot encode
        raise HostNotResolved(host) from error
    addresses = list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found))
    if not addresses:
        raise HostNotResolved(host)
    if not allow_private:
        for address in addresses:
            if not is_public(ipaddress.ip_address(address.partition("%")[0])):
                raise DestinationRefused(_refusal(host, address))
    return addresses


def _refusal(host: str, address: str) -> str:
    named = host.strip("[]")
    if named == address:
        return f"destination not allowed: {address} is not a public address"
    return f"destination not allowed: {named} resolves to {address}, not a public address"
