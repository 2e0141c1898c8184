"""Which addresses a capture may connect to: by default, not the archivist's own network.

A page can name any host: loopback on another port (also written ``localhost``,
``127.1``, ``2130706433``, ``0x7f000001``, ``[::1]``, ``[::ffff:127.0.0.1]``), the
cloud metadata service on 169.254.169.254, a router on 192.168.1.1.  Fetching those
would put the archivist's intranet into the evidence (and act on it), so a capture
refuses loopback, private, link-local, multicast, unspecified, reserved and other
addresses that are not publicly routable, unless ``--allow-private`` is given.

The check is made on the address the socket connects to: the host is resolved once,
each address checked, and the socket connected to that very address (see
``archiver.web.http._connect``), then the peer address checked again.  A name that
resolves to a public address for one lookup and a private one for the next (DNS
rebinding) cannot get round it, nor can an address spelled in an odd way, since
the resolver has already turned it into the address used.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

ALLOW_OPTION = "--allow-private"

# NAT64's well-known prefix (RFC 6052): 64:ff9b::a.b.c.d is a.b.c.d reached through the
# network's NAT64 gateway, the only way to IPv4 sites on an IPv6-only (DNS64) network
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
# not publicly routable (IANA special-purpose registries), whatever the running Python's
# ipaddress says: its tables changed in 3.11.10 and 3.12.4, older ones miss these
_NOT_GLOBAL = tuple(
    ipaddress.ip_network(n) for n in ("192.0.0.0/24", "fec0::/10", "3fff::/20", "5f00::/16")
)
_GLOBAL = (ipaddress.IPv4Address("192.0.0.9"), ipaddress.IPv4Address("192.0.0.10"))


def why_private(address: str) -> str | None:
    """Why the IP ``address`` is not a public one ("loopback", ...), or None when it is."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # no IPv6 zone index
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:127.0.0.1 reaches 127.0.0.1
            inner = why_private(str(ip.ipv4_mapped))
            return f"{inner}, IPv4-mapped" if inner else None
        if ip in _NAT64:  # 64:ff9b::127.0.0.1 is the gateway's own loopback
            inner = why_private(str(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)))
            return f"{inner}, NAT64" if inner else None
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and (inner := why_private(str(embedded))):
            return f"{inner}, embedded in IPv6"
    for kind, flag in (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("private", ip.is_private),
        ("not publicly routable", not ip.is_global),
    ):
        if flag:
            return kind
    if ip not in _GLOBAL and any(ip in network for network in _NOT_GLOBAL):
        return "not publicly routable"
    return None


def _canonical(address: str) -> str:
    """One spelling per address (IPv4-mapped IPv6 as the IPv4 address)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


@dataclass(frozen=True)
class AddressPolicy:
    """Refuses private addresses unless ``allow_private``; ``allowed`` lists (address,
    port) pairs let through even so (one intranet server, a test's own seed)."""

    allow_private: bool = False
    allowed: frozenset[tuple[str, int]] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "allowed", frozenset((_canonical(a), int(p)) for a, p in self.allowed)
        )

    def refusal(self, address: str, port: int, host: str | None = None) -> str | None:
        """Why connecting to ``address``:``port`` (for ``host``) is refused, or None."""
        if self.allow_private:
            return None
        why = why_private(address)
        if why is None or (_canonical(address), port) in self.allowed:
            return None
        of = "" if host is None or _same_host(host, address) else f" of {host}"
        return f"private address {address} ({why}){of}, not fetched (use {ALLOW_OPTION})"


def _same_host(host: str, address: str) -> bool:
    return host.strip("[]").lower() == address.lower()


def seed_refusal(host: str, port: int, policy: AddressPolicy) -> str | None:
    """Why a seed on ``host`` would be refused: every address it resolves to is.

    None when one address is allowed, or when the name does not resolve (the capture
    reports that itself)."""
    if policy.allow_private:
        return None
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    reasons = [policy.refusal(str(info[4][0]), port, host) for info in found]
    if not reasons or any(reason is None for reason in reasons):
        return None
    return reasons[0]


def seed_refusals(
    seeds: Iterable[tuple[str, int]], policy: AddressPolicy
) -> dict[tuple[str, int], str]:
    """:func:`seed_refusal` of each distinct (host, port), resolved a few at a time."""
    distinct = sorted(set(seeds))
    if policy.allow_private or not distinct:
        return {}
    with ThreadPoolExecutor(max_workers=min(16, len(distinct))) as pool:
        found = pool.map(lambda seed: seed_refusal(seed[0], seed[1], policy), distinct)
        return {seed: why for seed, why in zip(distinct, found, strict=True) if why}
