"""The http runner's destination policy (runners/destinations.py), checked without traffic:
classification and allow-list matching only look at addresses, the own-address check binds a
socket (which sends nothing), and `connect` only ever connects to this test's loopback server."""

from __future__ import annotations

import errno
import ipaddress
import re
import socket

import pytest

from runners import destinations
from runners.destinations import AllowEntry, DestinationPolicy, DestinationRefused
from tests.support.network import counting_server, own_addresses

DEFAULT = DestinationPolicy()


def policy(*entries: str) -> DestinationPolicy:
    return DestinationPolicy.from_entries(entries)


def own_ipv4() -> str:
    found = own_addresses(4)
    if not found:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return found[0]


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "a loopback address"),
    ("127.8.9.10", "a loopback address"),
    ("::1", "a loopback address"),
    ("169.254.169.254", "a link-local address"),
    ("169.254.0.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("fe80::a9fe:a9fe", "a link-local address"),
    ("10.0.0.1", "a private address"),
    ("10.255.255.254", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.254", "a private address"),
    ("192.168.1.1", "a private address"),
    ("fc00::1", "a private address"),
    ("fd12:3456:789a::1", "a private address"),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("100.127.255.254", "a carrier-grade NAT address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("255.255.255.255", "the broadcast address"),
    ("240.0.0.1", "a reserved address"),
    ("fec0::1", "a site-local address"),
    # IPv6 forms of IPv4 addresses are judged as the IPv4 address they stand for.
    ("::ffff:127.0.0.1", "a loopback address"),
    ("::ffff:169.254.169.254", "a link-local address"),
    ("::ffff:10.1.2.3", "a private address"),
    ("::ffff:0.0.0.0", "an unspecified address"),
    ("::127.0.0.1", "a loopback address"),            # IPv4-compatible
    ("::ffff:0:127.0.0.1", "a loopback address"),     # IPv4-translated
    ("64:ff9b::169.254.169.254", "a link-local address"),  # NAT64
    ("2002:a9fe:a9fe::1", "a 6to4 form of 169.254.169.254, a link-local address"),
    ("2002:7f00:1::", "a 6to4 form of 127.0.0.1, a loopback address"),
])
def test_every_internal_class_is_refused_by_default(address, why):
    assert DEFAULT.refusal(address, 80).startswith(why)


@pytest.mark.parametrize("address", [
    "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8",
    "2002:808:808::1",
])
def test_public_addresses_of_other_hosts_are_allowed(address):
    assert DEFAULT.refusal(address, 443) is None


def test_an_address_port_entry_opens_exactly_that_address_and_port():
    allowed = policy("127.0.0.1:18099")
    assert allowed.refusal("127.0.0.1", 18099) is None
    assert allowed.refusal("::ffff:127.0.0.1", 18099) is None  # the same destination
    assert allowed.refusal("127.0.0.1", 18100) == "a loopback address"
    assert allowed.refusal("127.0.0.2", 18099) == "a loopback address"
    assert allowed.refusal("::1", 18099) == "a loopback address"


def test_an_address_without_port_opens_every_port_and_a_range_its_ports():
    assert policy("169.254.169.254").refusal("169.254.169.254", 80) is None
    ranged = policy("127.0.0.1:18900-18999")
    assert ranged.refusal("127.0.0.1", 18900) is None
    assert ranged.refusal("127.0.0.1", 18999) is None
    assert ranged.refusal("127.0.0.1", 18899) == "a loopback address"
    assert ranged.refusal("127.0.0.1", 19000) == "a loopback address"


def test_cidr_entries_open_their_range_with_an_optional_port():
    wide = policy("10.20.0.0/16")
    assert wide.refusal("10.20.3.4", 80) is None
    assert wide.refusal("10.21.0.1", 80) == "a private address"
    https_only = policy("10.20.0.0/16:443")
    assert https_only.refusal("10.20.3.4", 443) is None
    assert https_only.refusal("10.20.3.4", 80) == "a private address"
    six = policy("[fd00:20::/32]:8443", "[::1]:8080")
    assert six.refusal("fd00:20::7", 8443) is None
    assert six.refusal("fd00:21::7", 8443) == "a private address"
    assert six.refusal("::1", 8080) is None
    assert six.refusal("::1", 8081) == "a loopback address"


def test_a_cidr_never_opens_this_hosts_own_addresses_a_single_address_entry_does():
    own = own_ipv4()
    network = ipaddress.ip_network(f"{own}/24", strict=False)
    neighbour = next(str(h) for h in network.hosts()
                     if str(h) != own and destinations.own_address_reason(h) is None)
    covering = policy(str(network))
    assert covering.refusal(own, 80) == "an address of this host"
    assert covering.refusal(neighbour, 80) is None
    assert policy("127.0.0.0/8").refusal("127.0.0.1", 80) == "an address of this host"
    assert policy(f"{own}:8080").refusal(own, 8080) is None
    assert policy(str(network), f"{own}:8080").refusal(own, 8080) is None  # any order


def test_this_machines_own_address_is_recognised_by_binding_to_it():
    own = own_ipv4()
    assert destinations.own_address_reason(ipaddress.ip_address(own)) == "an address of this host"
    assert DEFAULT.refusal(own, 80) == "an address of this host"
    assert DEFAULT.refusal(f"::ffff:{own}", 80) == "an address of this host"
    assert destinations.own_address_reason(ipaddress.ip_address("8.8.8.8")) is None


def test_this_machines_own_ipv6_address_is_recognised_too():
    found = own_addresses(6)
    if not found:
        pytest.skip("this machine has no global IPv6 address")
    assert DEFAULT.refusal(found[0], 80) == "an address of this host"


def test_when_the_own_address_check_fails_the_destination_is_refused(monkeypatch):
    def exhausted(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(destinations.socket, "socket", exhausted)
    reason = DEFAULT.refusal("8.8.8.8", 443)
    assert reason.startswith("an address this host could not check as its own")
    assert "Too many open files" in reason


@pytest.mark.parametrize(("entry", "complaint"), [
    ("internal.example.com", "never host names"),
    ("10.20.1.0/16", "has host bits set"),
    ("127.0.0.1:0", "bad port"),
    ("127.0.0.1:70000", "bad port"),
    ("127.0.0.1:20-10", "bad port"),
    ("127.0.0.1:http", "bad port"),
    ("[::1]8080", "[ADDRESS]:PORT"),
    ("[::1", "[ADDRESS]:PORT"),
    ("", "never host names"),
])
def test_bad_allow_entries_are_refused_naming_the_entry(entry, complaint):
    with pytest.raises(ValueError, match=re.escape(complaint)) as caught:
        DestinationPolicy.from_entries(["127.0.0.1:1", entry])
    assert str(caught.value).startswith(repr(entry))


def test_entries_parse_into_networks_and_port_ranges():
    assert AllowEntry.parse(" 10.0.0.0/8:443 ") == AllowEntry(
        ipaddress.ip_network("10.0.0.0/8"), (443, 443))
    assert AllowEntry.parse("[::1]:1-2") == AllowEntry(ipaddress.ip_network("::1/128"), (1, 2))
    assert AllowEntry.parse("fd00::/8") == AllowEntry(ipaddress.ip_network("fd00::/8"), None)


def test_connect_checks_every_resolved_address_before_connecting_to_any(monkeypatch):
    with counting_server() as server:
        answers = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port)),
                   (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.9.8.7", server.port))]
        monkeypatch.setattr(destinations.socket, "getaddrinfo", lambda *a, **k: answers)
        with pytest.raises(DestinationRefused) as refused:
            destinations.connect("mixed.test", server.port, policy(f"127.0.0.1:{server.port}"),
                                 timeout=5)
        monkeypatch.undo()
        assert (refused.value.address, refused.value.reason) == ("10.9.8.7", "a private address")
        assert str(refused.value) == (
            f"mixed.test:{server.port} resolves to 10.9.8.7, a private address; refused"
            " (ATTUNE.http_runner.allow opens a destination)")
        assert server.accepted_after_probe() == 0


def test_connect_connects_to_the_address_it_checked_without_resolving_again(monkeypatch):
    """DNS rebinding: a second answer (here loopback on another port) is never looked up."""
    with counting_server() as server:
        calls = []

        def rebinding(host, port, *args, **kwargs):
            calls.append(host)
            target = server.port if len(calls) == 1 else 9
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", target))]

        monkeypatch.setattr(destinations.socket, "getaddrinfo", rebinding)
        sock = destinations.connect("rebind.test", server.port,
                                    policy(f"127.0.0.1:{server.port}"), timeout=5)
        monkeypatch.undo()
        with sock:
            assert sock.getpeername() == ("127.0.0.1", server.port)
        assert calls == ["rebind.test"]
