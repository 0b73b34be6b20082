"""The http runner against real local servers: internal and own-host destinations are refused
with `destination_refused` before any connection (the server accepts none), an allow-list entry
opens exactly its destination, and every redirect hop is checked again."""

from __future__ import annotations

import errno
import socket

import pytest

from runners.base import Outcome, RunRequest, RunResult
from runners.destinations import DestinationPolicy
from runners.http import HttpRunner
from tests.support.network import counting_server, own_addresses

HINT = "; refused (ATTUNE.http_runner.allow opens a destination)"


def run_http(url: str, *allow: str, tmp_path) -> RunResult:
    return HttpRunner().run(RunRequest(
        execution_id=1, action_ref="p.call", runner_type="http", working_dir=tmp_path,
        timeout_s=10, http_config={"method": "GET", "url": url},
        destination_policy=DestinationPolicy.from_entries(allow)))


def refused(result: RunResult) -> str:
    assert result.outcome is Outcome.FAILED
    assert result.error["type"] == "destination_refused", result.error
    assert result.status_code is None
    return result.error["message"]


@pytest.fixture
def own_ipv4() -> str:
    found = own_addresses(4)
    if not found:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return found[0]


def test_a_loopback_server_is_refused_and_never_connected_to(tmp_path):
    with counting_server("127.0.0.1") as server:
        message = refused(run_http(f"{server.url}/", tmp_path=tmp_path))
        assert message == f"{server.url}/ resolves to 127.0.0.1, a loopback address{HINT}"
        assert server.accepted_after_probe() == 0


def test_a_server_on_this_machines_own_address_is_refused_and_never_connected_to(
        tmp_path, own_ipv4):
    with counting_server(own_ipv4) as server:
        message = refused(run_http(f"{server.url}/x", tmp_path=tmp_path))
        assert message == f"{server.url}/x resolves to {own_ipv4}, an address of this host{HINT}"
        assert server.accepted_after_probe() == 0


def test_an_allow_list_entry_for_the_exact_address_and_port_lets_the_request_through(
        tmp_path, own_ipv4):
    with counting_server("127.0.0.1") as loopback, counting_server(own_ipv4) as own:
        for server in (loopback, own):
            result = run_http(f"{server.url}/ok", f"{server.host}:{server.port}",
                              tmp_path=tmp_path)
            assert result.outcome is Outcome.SUCCEEDED, result.error
            assert (result.status_code, result.output) == (200, {"ok": True})
            assert server.accepted_after_probe() == 1
        # The entry opens that port only.
        assert refused(run_http(f"{loopback.url}/", f"127.0.0.1:{loopback.port + 1}",
                                tmp_path=tmp_path))
        assert loopback.accepted_after_probe() == 2  # the allowed request, the first probe


@pytest.mark.parametrize("spelling", [
    "localhost", "localhost.", "[::ffff:127.0.0.1]", "[::127.0.0.1]"])
def test_a_name_or_spelling_that_resolves_to_loopback_is_refused(tmp_path, spelling):
    with counting_server("127.0.0.1") as server:
        message = refused(run_http(f"http://{spelling}:{server.port}/", tmp_path=tmp_path))
        assert f"http://{spelling}:{server.port}/ resolves to " in message
        assert "a loopback address" in message
        assert server.accepted_after_probe() == 0


def test_ipv6_loopback_is_refused(tmp_path):
    with socket.socket(socket.AF_INET6) as probe:
        if probe.connect_ex(("::1", 9)) not in (0, errno.ECONNREFUSED):
            pytest.skip("no IPv6 loopback on this machine")
    with counting_server("::1") as server:
        message = refused(run_http(f"{server.url}/", tmp_path=tmp_path))
        assert message == f"{server.url}/ resolves to ::1, a loopback address{HINT}"
        assert server.accepted_after_probe() == 0


def test_a_redirect_from_an_allowed_server_to_a_refused_one_is_refused(tmp_path):
    with counting_server("127.0.0.1") as allowed, counting_server("127.0.0.1") as target:
        start = f"{allowed.url}/redirect?to={target.url}/secret"
        message = refused(run_http(start, f"127.0.0.1:{allowed.port}", tmp_path=tmp_path))
        assert message == (f"GET {start} redirected: {target.url}/secret resolves to"
                           f" 127.0.0.1, a loopback address{HINT}")
        assert allowed.accepted_after_probe() == 1
        assert target.accepted_after_probe() == 0


def test_redirects_between_allowed_destinations_are_still_followed(tmp_path):
    with counting_server("127.0.0.1") as first, counting_server("127.0.0.1") as second:
        result = run_http(f"{first.url}/redirect?to={second.url}/final",
                          f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}",
                          tmp_path=tmp_path)
        assert result.outcome is Outcome.SUCCEEDED, result.error
        assert (result.status_code, result.output) == (200, {"ok": True})
        assert second.accepted_after_probe() == 1


def test_a_proxy_from_the_environment_is_not_a_way_around(tmp_path, monkeypatch):
    """The proxy is allowed, the destination is not: going through it would reach the
    destination by way of an allowed address, so the worker's proxy variables are ignored."""
    with counting_server("127.0.0.1") as proxy, counting_server("127.0.0.1") as target:
        for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        message = refused(run_http(f"{target.url}/", f"127.0.0.1:{proxy.port}",
                                   tmp_path=tmp_path))
        monkeypatch.undo()
        assert message.startswith(f"{target.url}/ resolves to 127.0.0.1")
        assert proxy.accepted_after_probe() == 0
        assert target.accepted_after_probe() == 0


def test_https_destinations_are_checked_the_same_way(tmp_path):
    with counting_server("127.0.0.1") as server:
        url = f"https://127.0.0.1:{server.port}/"
        assert refused(run_http(url, tmp_path=tmp_path)) == (
            f"{url} resolves to 127.0.0.1, a loopback address{HINT}")
        assert server.accepted_after_probe() == 0
