"""`python -m gateway.serve` as a process: serves HTTP and /ws, stops cleanly on SIGTERM; with
several processes, each serves the one port and the API socket and relays notifications."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from nameko.standalone.events import event_dispatcher

from nameko_services.config import PROJECT_ROOT
from nameko_services.domain import messages as m
from tests.integration import rows
from tests.integration.rows import wait_until
from tests.support.e2e import login
from tests.support.factories import make_admin
from tests.support.network import server_of

pytestmark = pytest.mark.integration


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def start_gateway(config, engine, tmp_path):
    """Start `python -m gateway.serve` with N processes on the test database and vhost, its run
    dir in tmp_path (no services: /health is degraded); killed at the end if still running."""
    started = []

    def start(processes, **settings):
        port = free_port()
        env = {**os.environ, **settings, "ATTUNE_DATABASE_URL": config["ATTUNE"]["database_url"],
               "ATTUNE_AMQP_URI": config["AMQP_URI"], "ATTUNE_API_PORT": str(port),
               "ATTUNE_RUN_DIR": str(tmp_path / "run"),
               "ATTUNE_GATEWAY_PROCESSES": str(processes)}
        log = tmp_path / "gateway.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.serve", "--config",
                 str(PROJECT_ROOT / "nameko.yaml")],
                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        gateway = SimpleNamespace(proc=proc, url=f"http://127.0.0.1:{port}", port=port, log=log,
                                  socket=tmp_path / "run" / "api" / "api.sock")

        def answering():
            try:
                return requests.get(f"{gateway.url}/health", timeout=5).status_code
            except requests.ConnectionError:
                assert proc.poll() is None, log.read_text()
                return None

        wait_until(answering, deadline=60)
        return gateway

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()  # its processes end with it (their parent-death signal)
            proc.wait()


def forked(pid):
    """The live processes `pid` forked."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def health_over_socket(path):
    """GET /health through the API's unix socket: (status, body)."""
    conn = http.client.HTTPConnection("localhost", timeout=10)
    conn.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.sock.settimeout(10)
    conn.sock.connect(str(path))
    try:
        conn.request("GET", "/health")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("processes", [1, 2])
def test_serves_api_and_websocket_then_stops_on_sigterm_closing_sockets_with_1001(
    start_gateway, engine, processes
):
    gateway = start_gateway(processes)
    health = requests.get(f"{gateway.url}/health", timeout=10)
    assert health.status_code == 503 and health.json()["checks"]["database"] == "ok"
    api = login(gateway.url, make_admin(engine)["username"])
    feed = api.notifications()
    feed.subscribe("execution")
    gateway.proc.send_signal(signal.SIGTERM)
    assert feed.close_code(timeout=20) == 1001
    assert gateway.proc.wait(timeout=30) == 0, gateway.log.read_text()
    text = gateway.log.read_text()
    assert "closed 1 websocket(s)" in text and "gateway stopped" in text


def test_several_processes_share_the_port_and_the_socket_and_each_relays_notifications(
    start_gateway, engine, config
):
    gateway = start_gateway(2)
    serving = wait_until(lambda: len(forked(gateway.proc.pid)) == 2 and forked(gateway.proc.pid),
                         deadline=30)
    seen = set()  # every request on a new connection: the kernel spreads them over both

    def both_answer(ask):
        seen.add(ask())
        return seen == {1, 2}

    wait_until(lambda: both_answer(lambda: requests.get(f"{gateway.url}/health", timeout=10)
                                   .json()["gateway_process"]), deadline=30)

    def over_socket():
        status, body = health_over_socket(gateway.socket)
        assert status == 503, body
        return json.loads(body)["gateway_process"]

    # The socket is one listener both processes accept on (no SO_REUSEPORT for unix sockets):
    # which wakes first is up to the scheduler, so each is shown serving it while the other
    # is stopped.
    answered = set()
    for stopped in serving:
        os.kill(stopped, signal.SIGSTOP)
        try:
            answered.add(over_socket())
        finally:
            os.kill(stopped, signal.SIGCONT)
    assert answered == {1, 2}

    admin = make_admin(engine)
    api = login(gateway.url, admin["username"])
    feeds = {}  # serving pid → a subscribed WebSocket on it

    def one_on_each():
        feed = api.notifications()
        if feeds.setdefault(server_of(feed, gateway.port, serving), feed) is not feed:
            feed.close()  # its process has one already
        return set(feeds) == set(serving)

    wait_until(one_on_each, deadline=30)
    for feed in feeds.values():
        feed.subscribe("execution")
    news = {"event": "execution.status_changed", "entity_type": "execution", "entity_id": 9,
            "data": {"status": "running"}, "timestamp": "2026-01-27T10:30:00.000Z"}
    event_dispatcher(config)(m.NOTIFIER, m.NOTIFICATION_PUBLISHED, {
        "notifications": [{"tenant_id": admin["tenant_id"], "message": news}]})
    for feed in feeds.values():
        assert feed.recv(timeout=20)["entity_id"] == 9

    gateway.proc.send_signal(signal.SIGTERM)
    assert [feed.close_code(timeout=20) for feed in feeds.values()] == [1001, 1001]
    assert gateway.proc.wait(timeout=30) == 0, gateway.log.read_text()
    assert not any(alive(pid) for pid in serving)
    closing = re.findall(r"\[(\d+)\] closed \d+ websocket", gateway.log.read_text())
    assert sorted(closing) == sorted(str(pid) for pid in serving)  # each closed its own


def test_a_process_that_ends_by_itself_ends_the_gateway(start_gateway):
    gateway = start_gateway(2)
    serving = wait_until(lambda: len(forked(gateway.proc.pid)) == 2 and forked(gateway.proc.pid),
                         deadline=30)
    os.kill(serving[0], signal.SIGKILL)
    assert gateway.proc.wait(timeout=30) == 1
    assert not alive(serving[1])
    assert "ended by itself" in gateway.log.read_text()


def test_new_connections_go_to_the_process_with_the_fewest_open_ones(start_gateway):
    """30 keep-alive connections opened one after another end up 15 and 15 (gateway/balance.py);
    the kernel's SO_REUSEPORT hash split them at random (15/15 one time in seven)."""
    gateway = start_gateway(2)
    wait_until(lambda: len(forked(gateway.proc.pid)) == 2, deadline=30)
    sessions = []
    try:
        served = []
        for _ in range(30):
            session = requests.Session()  # its connection stays open until closed below
            sessions.append(session)
            served.append(session.get(f"{gateway.url}/health", timeout=10)
                          .json()["gateway_process"])
        assert sorted((served.count(1), served.count(2))) == [15, 15], served
    finally:
        for session in sessions:
            session.close()


def test_each_process_announces_the_tenants_listened_to_there(start_gateway, engine, config,
                                                              container_factory):
    """domain/presence.py: every interval (even no tenant), and at once when a tenant's first
    WebSocket client or waiting request arrives, before it stores anything."""
    heard: list = []
    container_factory(rows.listener([(m.GATEWAY, m.LISTENERS_PRESENT)], heard), config).start()
    gateway = start_gateway(1, ATTUNE_NEWS_INTERVAL="0.3")

    def announced():
        return [payload["tenants"] for _, _, payload in heard]

    wait_until(lambda: [] in announced(), deadline=30)  # the timer, with no listener yet
    admin = make_admin(engine)
    api = login(gateway.url, admin["username"])
    feed = api.notifications()
    wait_until(lambda: [admin["tenant_id"]] in announced())
    feed.close()
    heard.clear()
    wait_until(lambda: announced()[-2:] == [[], []])  # gone: the timer leaves it out


def test_a_tenants_first_listener_is_announced_at_once(start_gateway, engine, config,
                                                       container_factory):
    heard: list = []
    container_factory(rows.listener([(m.GATEWAY, m.LISTENERS_PRESENT)], heard), config).start()
    gateway = start_gateway(1, ATTUNE_NEWS_INTERVAL="300")  # no timer within the test
    admin = make_admin(engine)
    api = login(gateway.url, admin["username"])
    api.notifications()
    wait_until(lambda: [payload["tenants"] for _, _, payload in heard]
               == [[admin["tenant_id"]]])
    other = make_admin(engine)
    waiting = login(gateway.url, other["username"])
    # a synchronous run (`?wait=`) of an action that does not exist: refused after the slot
    # was reserved, and so announced (no services run here to answer it otherwise)
    waiting.post("/api/v1/executions?wait=1", json={"action": "core.nothing_here"})
    wait_until(lambda: [payload["tenants"] for _, _, payload in heard]
               == [[admin["tenant_id"]], [other["tenant_id"]]])
