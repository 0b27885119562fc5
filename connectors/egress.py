"""Where the ``http`` connector may connect: public addresses, plus an explicit allow-list.

Refused by default: loopback, private (RFC 1918, unique-local ``fc00::/7``), link-local, cloud
metadata endpoints (``169.254.169.254``, ``fd00:ec2::254``, ``100.100.100.200``,
``169.254.170.2``), unspecified, multicast, shared (``100.64.0.0/10``) and reserved addresses.
IPv6 forms that embed an IPv4 address (``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4) are
judged by that address.

The check runs on the addresses a name resolves to, inside the connection pool's resolver
(``GuardedResolver``): the pool connects only to addresses that passed, so a name that resolves
to something else on the next lookup (DNS rebinding) cannot slip through. URLs with an IP
literal, and every redirect target, are checked by the connector before it sends anything.

``ORCHESTRATOR_HTTP_ALLOW`` (comma-separated) lets more through: CIDRs or single addresses
(``127.0.0.1``, ``10.0.0.0/8``, ``::1``), host names (``internal.example``, any address they
resolve to) and ``*.example.internal`` for a name and its subdomains.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ALLOW_VARIABLE = "ORCHESTRATOR_HTTP_ALLOW"
METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2")
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class EgressDenied(OSError):
    """A destination the egress policy refuses (an OSError so the pool reports it as such)."""


def address_problem(address: IPAddress) -> str | None:
    """What kind of non-public address this is ('loopback', 'metadata', ...), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_problem(embedded)
    if address in METADATA:
        return "metadata"
    for kind in ("loopback", "link_local", "unspecified", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:
        return "non-public"
    return None


class EgressPolicy:
    """The allow-list and the checks; immutable once built."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.entries = tuple(entry.strip() for entry in allow if entry.strip())
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        suffixes: list[str] = []
        for entry in self.entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            name = entry.lower().rstrip(".")
            if name.startswith("*."):
                suffixes.append(name[1:])
            else:
                hosts.add(name)
        self._networks = tuple(networks)
        self._hosts = frozenset(hosts)
        self._suffixes = tuple(suffixes)

    def host_allowed(self, host: str) -> bool:
        """A host name the allow-list names (it may then resolve to anything)."""
        name = host.lower().rstrip(".")
        return name in self._hosts or any(name.endswith(s) or name == s[1:] for s in self._suffixes)

    def address_denied(self, address: str) -> str | None:
        """Why connecting to ``address`` is refused, or None."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return f"{address!r} is not an IP address"
        if any(ip in network for network in self._networks if network.version == ip.version):
            return None
        kind = address_problem(ip)
        if kind is None:
            return None
        return f"{address} is a {kind} address; allow it with {ALLOW_VARIABLE}"

    def host_denied(self, host: str) -> str | None:
        """For a URL's host: an IP literal is judged now; a name is judged when it resolves."""
        if self.host_allowed(host):
            return None
        try:
            ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
        except ValueError:
            return None
        return self.address_denied(host.strip("[]"))


class GuardedResolver(AbstractResolver):
    """Resolves, then keeps only the addresses the policy allows; none left: EgressDenied."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        if self.policy.host_allowed(host):
            return found
        allowed = [info for info in found if self.policy.address_denied(info["host"]) is None]
        if not allowed:
            reasons = sorted({str(self.policy.address_denied(info["host"])) for info in found})
            raise EgressDenied(f"{host} resolves only to refused addresses: {'; '.join(reasons)}")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def denied_cause(exc: BaseException) -> EgressDenied | None:
    """The EgressDenied behind a client error, if that is what it was."""
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, EgressDenied):
            return current
        seen.add(id(current))
        current = getattr(current, "os_error", None) or current.__cause__ or current.__context__
    return None
