"""Where a tenant-supplied URL may send the gateway: the egress policy against SSRF.

A tenant owner chooses a provider's base URL, and the gateway then POSTs to it with the tenant's
key and returns the answer: without a policy that is a request forgery into the gateway's own
network (loopback services, the cloud metadata endpoint, private ranges). So a tenant URL must name
a public address: every address its host resolves to is checked, and a host with any refused
address is refused as a whole (a name that answers both a public and a private address is a
rebinding trick, not a real provider). The check runs when the URL is saved (a form error) and
again at connection time (`optimizer/providers/openai_compat.py` connects only to the addresses
this module passed, so a second DNS answer cannot differ from the checked one).

Staff may allow extra host names and address ranges (`LEO_EGRESS_ALLOW`), e.g. a provider on the
office network, or the tests' fake upstream on loopback. The operator's own upstream
(`LEO_UPSTREAM_URL`) is not a tenant URL and is not checked.

Pure Python (`ipaddress`, `socket`, `urllib`), no Django, so settings can parse the allow list.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolve = Callable[[str, int], list[str]]

SCHEMES = ("http", "https")
_N = ipaddress.ip_network

# The most specific first: the first match names the refusal. The final `is_global` test in
# `refusal` catches whatever this table misses (it is a deny-list backed by an allow-list).
_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (_N("169.254.169.254/32"), "the cloud metadata address"),
    (_N("fd00:ec2::254/128"), "the cloud metadata address"),
    (_N("100.100.100.200/32"), "the cloud metadata address"),
    (_N("0.0.0.0/8"), "an unspecified address"),
    (_N("127.0.0.0/8"), "a loopback address"),
    (_N("10.0.0.0/8"), "a private address"),
    (_N("172.16.0.0/12"), "a private address"),
    (_N("192.168.0.0/16"), "a private address"),
    (_N("100.64.0.0/10"), "a shared (carrier-grade NAT) address"),
    (_N("169.254.0.0/16"), "a link-local address"),
    (_N("192.0.0.0/24"), "a reserved address"),
    (_N("192.0.2.0/24"), "a reserved address"),
    (_N("192.88.99.0/24"), "a reserved address"),
    (_N("198.18.0.0/15"), "a reserved address"),
    (_N("198.51.100.0/24"), "a reserved address"),
    (_N("203.0.113.0/24"), "a reserved address"),
    (_N("224.0.0.0/4"), "a multicast address"),
    (_N("240.0.0.0/4"), "a reserved address"),
    (_N("::/128"), "an unspecified address"),
    (_N("::1/128"), "a loopback address"),
    (_N("fc00::/7"), "a private address"),
    (_N("fe80::/10"), "a link-local address"),
    (_N("fec0::/10"), "a link-local address"),
    (_N("ff00::/8"), "a multicast address"),
    (_N("64:ff9b:1::/48"), "a reserved address"),
    (_N("100::/64"), "a reserved address"),
    (_N("2001::/23"), "a reserved address"),
    (_N("2001:db8::/32"), "a reserved address"),
    (_N("3fff::/20"), "a reserved address"),
)
_NAT64 = _N("64:ff9b::/96")
_GLOBAL_UNICAST_V6 = _N("2000::/3")
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class EgressRefused(ValueError):
    """A URL or address the policy refuses; the message is fit to show the tenant who typed it."""


def _embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form carries (mapped, NAT64, 6to4), which is where it really goes."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public destination ("a loopback address", ...), or None if it is."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_v4(address)
        if inner is not None:
            reason = refusal(inner)
            return None if reason is None else f"{reason} (IPv4 inside IPv6)"
    for network, reason in _REFUSED:
        if address.version == network.version and address in network:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST_V6:
        return "a reserved address"
    if not address.is_global:
        return "a non-public address"
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, None for a DNS name.

    Hosts that look numeric but are not a canonical address (`2130706433`, `127.1`, `0x7f.1`,
    `0177.0.0.1`) are refused outright: resolvers read them as addresses in ways that differ.
    """
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    labels = bare.rstrip(".").split(".")
    if ":" in bare or all(_numeric(label) for label in labels):
        raise EgressRefused(f"{host} is not a valid IP address.")
    return None


def _numeric(label: str) -> bool:
    low = label.lower()
    return low.isdigit() or (low.startswith("0x") and all(c in "0123456789abcdef" for c in low[2:]))


def normalize_host(host: str) -> str:
    return host.strip("[]").rstrip(".").lower()


@dataclass(frozen=True)
class EgressPolicy:
    """What staff allow beyond public addresses: host names, and address ranges."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def parse(cls, entries: Iterable[str]) -> EgressPolicy:
        """Strict: each entry is a host name, an IP address or a CIDR range (host bits zero)."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                raise ValueError("an empty entry (a stray comma?)")
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=True))
                continue
            except ValueError as exc:
                if "/" in entry or ":" in entry:
                    raise ValueError(f"{entry!r} is not an IP address or CIDR range ({exc})") from None
            name = normalize_host(entry)
            if not _HOSTNAME.match(name) or all(_numeric(label) for label in name.split(".")):
                raise ValueError(f"{entry!r} is not a host name, IP address or CIDR range")
            hosts.add(name)
        return cls(frozenset(hosts), tuple(networks))

    @classmethod
    def from_env_value(cls, raw: str) -> EgressPolicy:
        """A comma-separated list; empty means nothing beyond public addresses."""
        return cls() if not raw.strip() else cls.parse(raw.split(","))

    def allows_host(self, host: str) -> bool:
        return normalize_host(host) in self.hosts

    def _allows_address(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and (inner := _embedded_v4(address)) is not None:
            candidates.append(inner)
        return any(a.version == n.version and a in n for a in candidates for n in self.networks)

    def check_address(self, host: str, address: str | IPAddress, *, resolved: bool = True) -> None:
        """Raise EgressRefused unless `address` (which `host` resolves to, or names when not
        `resolved`) may be reached. The message names the host, not the address a name resolved to:
        a tenant learns nothing about the gateway's internal DNS beyond the refusal."""
        ip = address if isinstance(address, IPAddress) else ipaddress.ip_address(address)
        if self._allows_address(ip):
            return
        reason = refusal(ip)
        if reason is not None:
            raise EgressRefused(f"{host} {'resolves to' if resolved else 'is'} {reason}; the gateway connects "
                                f"tenants' providers only to public addresses.")

    def check_host(self, host: str, port: int, resolve: Resolve | None = None) -> list[str]:
        """Check a host as a connection would reach it; returns the checked addresses (empty when a
        name does not resolve now: it is checked again when it is used)."""
        if self.allows_host(host):
            return []
        literal = literal_address(host)
        if literal is not None:
            self.check_address(host, literal, resolved=False)
            return [str(literal)]
        addresses = (resolve or resolve_all)(host, port)
        for address in addresses:
            self.check_address(host, address)
        return addresses

    def check_url(self, url: str, resolve: Resolve | None = None) -> list[str]:
        """Check a URL as typed (scheme, host, every address its host resolves to)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise EgressRefused(f"The URL is malformed ({exc}).") from None
        if parts.scheme.lower() not in SCHEMES:
            raise EgressRefused("The URL must start with http:// or https://.")
        if not parts.hostname:
            raise EgressRefused("The URL has no host.")
        return self.check_host(parts.hostname, port or (443 if parts.scheme.lower() == "https" else 80), resolve)


def resolve_all(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (none when the name does not resolve)."""
    try:
        infos: list[Any] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        return []
    return sorted({info[4][0] for info in infos})
