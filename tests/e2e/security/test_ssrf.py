"""SSRF: a fresh tenant's `core.http` cannot reach loopback, this machine's own address or the
platform's own API; it fails `destination_refused`, the listener sees no connection and the
platform stays healthy (issue #14, docs/security.md "http runner destinations")."""

from __future__ import annotations

import pytest
import requests

from tests.support.network import counting_server, own_addresses
from tests.support.pack_envs import allowed_test_ports, execute

HINT = "; refused (ATTUNE.http_runner.allow opens a destination)"


def refused(api, url: str) -> str:
    """Run core.http against `url` as the tenant; the refusal message."""
    run = execute(api, "core.http", {"url": url})
    assert run["status"] == "failed", run["result"]
    error = run["result"]["error"]
    assert error["type"] == "destination_refused", error
    assert run["result"].get("status_code") is None
    return error["message"]


def assert_healthy(platform) -> None:
    response = requests.get(f"{platform.api_url}/health", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_core_http_to_a_loopback_listener_is_refused_and_never_connects(platform, api):
    with counting_server("127.0.0.1") as listener:
        assert listener.port not in allowed_test_ports()  # an ephemeral port nobody opened
        url = f"{listener.url}/admin"
        assert refused(api, url) == f"{url} resolves to 127.0.0.1, a loopback address{HINT}"
        assert listener.accepted_after_probe() == 0
    assert_healthy(platform)


def test_core_http_to_this_machines_own_address_is_refused_and_never_connects(platform, api):
    addresses = own_addresses(4)
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with counting_server(addresses[0]) as listener:
        url = f"{listener.url}/"
        assert refused(api, url) == (
            f"{url} resolves to {addresses[0]}, an address of this host{HINT}")
        assert listener.accepted_after_probe() == 0
    assert_healthy(platform)


def test_core_http_to_the_platforms_own_api_is_refused(platform, api):
    url = f"{platform.api_url}/api/v1/users"
    assert refused(api, url).startswith(f"{url} resolves to ")
    assert_healthy(platform)
