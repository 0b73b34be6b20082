"""`python -m gateway.serve` as a process: serves HTTP and /ws, stops cleanly on SIGTERM."""

import os
import signal
import socket
import subprocess
import sys

import pytest
import requests

from nameko_services.config import PROJECT_ROOT
from tests.integration.rows import wait_until
from tests.support.e2e import login
from tests.support.factories import make_admin

pytestmark = pytest.mark.integration


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gateway(config, engine, tmp_path):
    """A gateway process on the test database and vhost (no services: /health is degraded)."""
    port = free_port()
    env = {**os.environ, "ATTUNE_DATABASE_URL": config["ATTUNE"]["database_url"],
           "ATTUNE_AMQP_URI": config["AMQP_URI"], "ATTUNE_API_PORT": str(port)}
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.serve", "--config", str(PROJECT_ROOT / "nameko.yaml")],
            cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def answering():
        try:
            return requests.get(f"{url}/health", timeout=5).status_code
        except requests.ConnectionError:
            assert proc.poll() is None, log.read_text()
            return None

    wait_until(answering, deadline=60)
    yield proc, url, log
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_serves_api_and_websocket_then_stops_on_sigterm_closing_sockets_with_1001(
    gateway, engine
):
    proc, url, log = gateway
    health = requests.get(f"{url}/health", timeout=10)
    assert health.status_code == 503 and health.json()["checks"]["database"] == "ok"
    api = login(url, make_admin(engine)["username"])
    feed = api.notifications()
    feed.subscribe("execution")
    proc.send_signal(signal.SIGTERM)
    assert feed.close_code(timeout=20) == 1001
    assert proc.wait(timeout=30) == 0, log.read_text()
    text = log.read_text()
    assert "closed 1 websocket(s)" in text and "gateway stopped" in text
