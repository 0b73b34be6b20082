"""Sign-up and login hardening (#14) on the running platform: one client address cannot spray
logins over many user names, and admins are rate-limited in a bucket of their own."""

from __future__ import annotations

import http.client
import json
import random
from urllib.parse import urlsplit

import pytest

from tests.support.e2e import PASSWORD, unique_name

LOGIN_BURST = 20  # config.e2e.yaml rate_limit.login_address
ADMIN_RATE, ADMIN_BURST = 20, 200  # config.e2e.yaml rate_limit.admin
ENOUGH = 5000  # far more requests than a bucket refilled at these rates can grant in their time


def login_from(api_url: str, address: str, username: str, password: str,
               **headers: str) -> tuple[int, dict[str, str], dict]:
    """POST /auth/login over a connection whose source address is `address` (any 127.x.y.z
    reaches a gateway on 127.0.0.1), as a client on another machine would arrive."""
    url = urlsplit(api_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=15,
                                      source_address=(address, 0))
    try:
        conn.request("POST", "/auth/login",
                     body=json.dumps({"username": username, "password": password}),
                     headers={"Content-Type": "application/json", **headers})
        response = conn.getresponse()
        return response.status, dict(response.headers), json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture
def other_address(platform) -> str:
    """A loopback address of this test's own, so its bucket starts full and no other test's
    logins (from 127.0.0.1) spend it."""
    if urlsplit(platform.api_url).hostname != "127.0.0.1":
        pytest.skip("needs the platform on 127.0.0.1 to arrive from other loopback addresses")
    return f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"


def test_one_address_spraying_user_names_is_refused_while_others_still_log_in(
    platform, make_api, other_address
):
    user = make_api()
    codes = []
    for n in range(LOGIN_BURST * 10):
        status, headers, body = login_from(
            platform.api_url, other_address, unique_name("spray"), "guess-123",
            **{"X-Forwarded-For": f"10.9.8.{n % 250}"})  # not believed: the peer counts
        codes.append(status)
        if status == 429:
            break
    # Every name was new (its own failed-login bucket full), so only the address refused.
    assert codes[:LOGIN_BURST] == [401] * LOGIN_BURST
    assert codes[-1] == 429, codes
    assert body["error"]["code"] == "rate_limited"
    assert f"logins from {other_address}" in body["error"]["message"]
    assert int(headers["Retry-After"]) >= 1
    # The user whose name was never sprayed logs in from its own address as usual.
    status, _, body = login_from(platform.api_url, "127.0.0.1", user.user["username"], PASSWORD)
    assert status == 200, body


def test_an_admin_is_limited_in_its_own_larger_bucket_and_its_users_keep_theirs(make_api):
    admin = make_api()
    viewer = make_api("viewer", admin=admin)
    codes = []
    for _ in range(ENOUGH):
        response = admin.get("/api/v1/me")
        codes.append(response.status_code)
        if response.status_code == 429:
            break
    assert codes[-1] == 429, f"no 429 after {len(codes)} requests"
    assert codes.count(200) >= ADMIN_BURST - 1  # the burst (less the request that made viewer)
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    assert f"{ADMIN_RATE} requests/s, burst {ADMIN_BURST}" in error["message"]
    assert int(response.headers["Retry-After"]) >= 1
    assert viewer.get("/api/v1/me").status_code == 200  # the admin's bucket is not the tenant's
