"""Issue 16: the rate limits are shared by every gateway. A second gateway (the command `attune
up` uses, on another port and run dir, the session's database and broker) serves beside the
session's; a client alternating between the two meets exactly one limit, not one per gateway."""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from nameko_services.cli import command_for
from tests.support.e2e import PASSWORD, PROJECT_ROOT, unique_name, wait_until

from .test_signup import login_from

USER_RATE = 10  # config.e2e.yaml rate_limit.user: 10/s, burst 10
FAILURES_BURST, FAILURES_RATE = 10, 0.2  # rate_limit.login_failures
MOST = 200  # requests before giving up on a 429


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=3).status_code in (200, 503)
    except requests.RequestException:
        return False


@pytest.fixture
def second_gateway(platform, tmp_path) -> Iterator[str]:
    """Another gateway on a port of its own; its base URL. SIGTERM afterwards."""
    port = _free_port()
    log = Path(platform.run_dir, "logs", f"gateway-shared-limits-{port}.log")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            command_for("gateway", Path(platform.config)), cwd=PROJECT_ROOT,
            env={**platform.env, "PYTHONUNBUFFERED": "1", "ATTUNE_API_PORT": str(port),
                 "ATTUNE_RUN_DIR": str(tmp_path / "run")},
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is not None or _answers(url), timeout=60,
                   message="the second gateway to answer")
        assert proc.poll() is None, f"the second gateway exited: {log}"
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_a_users_limit_holds_across_two_gateways(platform, second_gateway, make_api):
    admin = make_api()
    viewer = make_api("viewer", admin=admin)
    sessions = []
    for base in (platform.api_url, second_gateway):
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {viewer.token}"
        sessions.append((base, session))
    codes: list[int] = []
    began = time.monotonic()
    for n in range(MOST):
        base, session = sessions[n % 2]
        response = session.get(f"{base}/api/v1/me", timeout=15)
        codes.append(response.status_code)
        if response.status_code == 429:
            break
    elapsed = time.monotonic() - began
    assert codes[:USER_RATE] == [200] * USER_RATE, codes
    assert codes[-1] == 429, codes
    # One bucket for both: the burst plus what `elapsed` refilled. A bucket per gateway would
    # have granted twice the burst (and twice the refill) before either refused.
    assert codes.count(200) <= USER_RATE + USER_RATE * elapsed + 1, (codes, elapsed)
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    # Whichever gateway is asked next, the bucket is the same empty one.
    other_base, other = sessions[len(codes) % 2]
    assert other.get(f"{other_base}/api/v1/me", timeout=15).status_code == 429
    for _, session in sessions:
        session.close()


def test_failed_logins_of_a_name_are_counted_once_across_two_gateways(
    platform, second_gateway, make_api
):
    user = make_api()
    name = user.user["username"]
    # An address of this test's own (a fresh login_address bucket, burst 20).
    address = f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    bases = (platform.api_url, second_gateway)
    codes = []
    began = time.monotonic()
    for n in range(FAILURES_BURST * 2):
        status, headers, body = login_from(bases[n % 2], address, name, "wrong-guess-1")
        codes.append(status)
        if status == 429:
            break
    elapsed = time.monotonic() - began
    assert codes[:FAILURES_BURST] == [401] * FAILURES_BURST, codes
    assert codes[-1] == 429, codes
    # The name's one bucket: its burst, plus a token per 5 s that passed. Per gateway, both
    # would have let 20 guesses through.
    assert codes.count(401) <= FAILURES_BURST + FAILURES_RATE * elapsed, (codes, elapsed)
    assert body["error"]["code"] == "rate_limited"
    assert "failed logins of this user name" in body["error"]["message"]
    assert int(headers["Retry-After"]) >= 1
    # Even the right password waits at the other gateway (the next token is seconds away)...
    status, _, _ = login_from(bases[len(codes) % 2], address, name, PASSWORD)
    assert status == 429
    # ...while another name still only fails as a wrong password does.
    status, _, _ = login_from(bases[len(codes) % 2], address, unique_name("nobody"), "wrong-1")
    assert status == 401
