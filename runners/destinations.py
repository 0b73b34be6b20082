"""Where an http action may connect: internal destinations are refused (SSRF, docs/security.md).

A destination is checked after DNS resolution, on every address the name resolves to, and the
connection then goes to exactly the address that was checked (`connect`), so a name that
changes its answer between check and use (DNS rebinding) reaches nothing unchecked. Only the
standard library is used: the runner stays pure and the checks need no network traffic.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_KEY = "ATTUNE.http_runner.allow"

# IPv6 forms that stand for an IPv4 address: the IPv4 address is the destination.
_IPV4_IN_IPV6 = tuple(ipaddress.IPv6Network(n) for n in (
    "::ffff:0:0/96",    # IPv4-mapped (a dual-stack socket connects to the IPv4 address)
    "::/96",            # IPv4-compatible (deprecated)
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT)
    "64:ff9b::/96",     # NAT64 well-known prefix (the gateway connects to the IPv4 address)
))
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_UNSUPPORTED_FAMILY = (errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT)


class DestinationRefused(Exception):
    """The destination resolves to an address the policy refuses; nothing was sent to it."""

    def __init__(self, host: str, port: int, address: str, reason: str) -> None:
        super().__init__(host, port, address, reason)
        self.host, self.port, self.address, self.reason = host, port, address, reason
        self.url: str | None = None  # the request's URL, when the caller knows it

    def __str__(self) -> str:
        where = self.url or f"{self.host}:{self.port}"
        return (f"{where} resolves to {self.address}, {self.reason}; refused"
                f" ({ALLOW_KEY} opens a destination)")


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One allow-list entry: an address or CIDR, and an inclusive port range (None: any)."""

    network: IPNetwork
    ports: tuple[int, int] | None = None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        """`ADDRESS[/PREFIX][:PORT[-PORT]]` (IPv6 in brackets when a port follows); ValueError
        when it is not one."""
        raw = str(text).strip()
        if raw.startswith("["):
            address, closed, rest = raw[1:].partition("]")
            if not closed or (rest and not rest.startswith(":")):
                raise ValueError("an IPv6 entry with a port is written [ADDRESS]:PORT")
            ports = rest[1:] if rest else None
        elif raw.count(":") == 1:
            address, ports = raw.split(":")
        else:
            address, ports = raw, None
        try:
            network = ipaddress.ip_network(address, strict=True)
        except ValueError as exc:
            raise ValueError(f"{exc} (entries are IP addresses or CIDRs, never host names: a"
                             " name can be pointed anywhere)") from None
        return cls(network, None if ports is None else _port_range(ports))

    @property
    def single(self) -> bool:
        """True when the entry names one address (only such an entry opens a host address)."""
        return self.network.num_addresses == 1

    def matches(self, address: IPAddress, port: int) -> bool:
        """Whether this entry opens `address`:`port`."""
        in_range = self.ports is None or self.ports[0] <= port <= self.ports[1]
        return in_range and address.version == self.network.version and (
            address in self.network)


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    """Refuse internal and own-host destinations unless an allow-list entry opens them."""

    allow: tuple[AllowEntry, ...] = ()

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> DestinationPolicy:
        """Parse every entry; ValueError names the first bad one."""
        parsed = []
        for entry in entries:
            try:
                parsed.append(AllowEntry.parse(entry))
            except ValueError as exc:
                raise ValueError(f"{entry!r}: {exc}") from None
        return cls(tuple(parsed))

    def refusal(self, address: str, port: int) -> str | None:
        """Why `address`:`port` is refused ("a loopback address"...), or None when allowed.

        An entry opens what it names, except that this host's own addresses (loopback
        included) are opened only by an entry naming that single address: a CIDR such as
        10.0.0.0/8 does not open the platform's own PostgreSQL on 10.0.0.5.
        """
        ip = _unwrap(ipaddress.ip_address(address))
        entries = [e for e in self.allow if e.matches(ip, port)]
        if not entries:
            return _class_reason(ip)
        return None if any(e.single for e in entries) else own_address_reason(ip)


def connect(host: str, port: int, policy: DestinationPolicy, timeout: float | None,
            source_address: tuple[str, int] | None = None,
            socket_options: Iterable[tuple[int, int, int | bytes]] | None = None
            ) -> socket.socket:
    """A TCP connection to `host`:`port` after every address it resolves to passed `policy`.

    DestinationRefused when any of them is refused (before any connection is tried); else the
    socket connected to the first of them that answers, or the last connection error.
    """
    candidates = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    for *_, sockaddr in candidates:
        address = str(sockaddr[0])  # already text for AF_INET/AF_INET6 (typeshed: str | int)
        reason = policy.refusal(address, port)
        if reason is not None:
            raise DestinationRefused(host, port, address, reason)
    failure: OSError | None = None
    for family, kind, proto, _, sockaddr in candidates:
        sock = socket.socket(family, kind, proto)
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            failure = exc
            sock.close()
    raise failure or OSError(f"{host} resolves to no address")


def own_address_reason(ip: IPAddress) -> str | None:
    """"an address of this host" when `ip` is one, by binding a socket to it (which succeeds
    only for a local address); when the check itself fails the address is refused too."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(ip), 0))
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL or exc.errno in _UNSUPPORTED_FAMILY:
            return None  # not local; or a family this host has no address (nor route) in
        if exc.errno == errno.EADDRINUSE:
            return "an address of this host"
        return f"an address this host could not check as its own or not ({exc})"
    return "an address of this host"


def _class_reason(ip: IPAddress) -> str | None:
    """The first refused class `ip` falls in, else None (a public address of another host)."""
    if ip.is_unspecified:
        return "an unspecified address (this host)"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address (cloud metadata services live there)"
    if ip.is_multicast:  # before the own-address check: a multicast group binds too
        return "a multicast address"
    if ip == _BROADCAST:
        return "the broadcast address"
    own = own_address_reason(ip)
    if own:
        return own
    # A 6to4 address is judged by the IPv4 address it embeds, before the generic classes:
    # which of them 2002::/16 falls in differs between Python patch releases (3.11.2 calls it
    # private), what it embeds does not.
    if isinstance(ip, ipaddress.IPv6Address) and ip.sixtofour is not None:
        embedded = _class_reason(ip.sixtofour)
        return f"a 6to4 form of {ip.sixtofour}, {embedded}" if embedded else None
    if ip in _SHARED:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return "a site-local address"
    if not ip.is_global:
        return "not a globally routable address"
    return None


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-mapped/compatible/translated or NAT64 IPv6 form stands for."""
    if isinstance(ip, ipaddress.IPv6Address) and ip not in (
            ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1")):
        for prefix in _IPV4_IN_IPV6:
            if ip in prefix:
                return ipaddress.IPv4Address(ip.packed[12:])
    return ip


def _port_range(text: str) -> tuple[int, int]:
    low, dash, high = text.partition("-")
    try:
        ports = (int(low), int(high) if dash else int(low))
    except ValueError:
        raise ValueError(f"bad port {text!r}") from None
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise ValueError(f"bad port {text!r} (1-65535, low-high)")
    return ports
